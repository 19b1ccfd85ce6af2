/**
 * What agent.upgrade needs to know about an agent, from wherever it is known: the gateway's
 * session when this replica holds the agent (newest), else the store's status row (written behind
 * by whichever replica holds it), and the `agent.upgrade.rolled_back` events the store recorded.
 */
import type { NotebookState, OverallHealth } from "@nbfleet/shared";
import type { Kysely } from "kysely";
import type { AgentGateway } from "../gateway/gateway.js";
import { inLists } from "../store/chunks.js";
import { eventIdBound } from "../store/ids.js";
import { fromJson } from "../store/json.js";
import type { Database } from "../store/schema.js";

export const ROLLED_BACK_EVENT = "agent.upgrade.rolled_back";

export interface AgentNow {
  connected: boolean;
  version: string | null;
  notebookState: NotebookState | null;
  health: OverallHealth;
}

/**
 * Up on the version and usable: connected, reporting `version`, and its notebook serving
 * (healthy, or degraded = warnings only) or deliberately stopped (nothing to serve).
 */
export function isUpgraded(agent: AgentNow | undefined, version: string): boolean {
  if (!agent?.connected || agent.version !== version) return false;
  if (agent.notebookState === "stopped") return true;
  return agent.notebookState === "running" && (agent.health === "healthy" || agent.health === "degraded");
}

/** The agent as this replica holds it, or undefined when it does not. */
export function liveAgent(gateway: AgentGateway, vmName: string): AgentNow | undefined {
  const live = gateway.live(vmName);
  if (!live) return undefined;
  return {
    connected: true,
    version: live.version,
    notebookState: live.notebook?.state ?? null,
    health: live.healthReport?.status ?? "unknown",
  };
}

/** The agents of `names` as the store has them (one statement per 512 names). */
export async function storedAgents(
  db: Kysely<Database>,
  names: readonly string[],
): Promise<Map<string, AgentNow>> {
  const out = new Map<string, AgentNow>();
  for (const list of inLists(names)) {
    const rows = await db
      .selectFrom("vm_status")
      .select(["vm_name", "agent_status", "agent_info", "notebook", "health"])
      .where("vm_name", "in", list)
      .execute();
    for (const row of rows) {
      out.set(row.vm_name, {
        connected: row.agent_status === "connected",
        version: fromJson<{ version?: string } | null>(row.agent_info, null)?.version ?? null,
        notebookState: fromJson<{ state?: NotebookState } | null>(row.notebook, null)?.state ?? null,
        health: row.health as OverallHealth,
      });
    }
  }
  return out;
}

/** Each agent's version now: the session held here, else the stored hello. */
export async function currentVersions(
  db: Kysely<Database>,
  gateway: AgentGateway,
  names: readonly string[],
): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  const elsewhere: string[] = [];
  for (const name of names) {
    const live = liveAgent(gateway, name);
    if (live) out.set(name, live.version);
    else elsewhere.push(name);
  }
  if (elsewhere.length > 0)
    for (const [name, agent] of await storedAgents(db, elsewhere)) out.set(name, agent.version);
  return out;
}

export interface RolledBack {
  /** The event's id (ids sort by the controller's time: see eventIdBound). */
  id: string;
  vmName: string;
  /** The version that was rolled back from (the event's `data.to`), when the agent said. */
  to: string | null;
  message: string;
}

/** Whether a rolled_back event is about `version` (an event that names no version is taken as it). */
export function rolledBackFrom(event: { data: Record<string, unknown> | null }, version: string): boolean {
  const to = event.data?.to;
  return typeof to !== "string" || to === version;
}

/** Whether a recorded rollback is about `version` and came after `sinceMs`. */
export function rollbackConcerns(rollback: RolledBack, version: string, sinceMs: number): boolean {
  return (rollback.to === null || rollback.to === version) && rollback.id >= eventIdBound(sinceMs);
}

/** The rolled_back events of `names` recorded since `sinceMs` (controller time: event ids). */
export async function storedRollbacks(
  db: Kysely<Database>,
  names: readonly string[],
  sinceMs: number,
): Promise<RolledBack[]> {
  const out: RolledBack[] = [];
  for (const list of inLists(names)) {
    const rows = await db
      .selectFrom("events")
      .select(["id", "vm_name", "message", "data"])
      .where("vm_name", "in", list)
      .where("id", ">=", eventIdBound(sinceMs))
      .where("kind", "=", ROLLED_BACK_EVENT)
      .orderBy("id")
      .execute();
    for (const row of rows) {
      const data = fromJson<Record<string, unknown> | null>(row.data, null);
      out.push({
        id: row.id,
        vmName: row.vm_name!,
        to: typeof data?.to === "string" ? data.to : null,
        message: row.message,
      });
    }
  }
  return out;
}
