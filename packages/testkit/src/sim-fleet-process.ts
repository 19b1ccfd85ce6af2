/**
 * A fleet of simulated agents in a process of its own (forked with IPC): apart from the
 * controller, so that a test can kill the controller while the fleet reconnects to the
 * restarted one, and so that a benchmark measures the controller's CPU and memory alone. Each
 * agent speaks the real protocol over a real WebSocket, answers commands after `delayMs`
 * (failing for the names in `fail`) and, with `record`, remembers what it received and ran,
 * with timestamps on its own clock. Drive it with SimFleetProcess (sim-fleet-remote.ts).
 *
 * Messages (process.send / on "message"):
 *   → {type: "start", url, urls?, vms: SeededVm[], delayMs?, fail?, record?, concurrency?, reconnect?}
 *   ← {type: "connected", agents, ms, retries}
 *   → {type: "unhealthy", every}  ← {type: "unhealthy", agents}   every n-th agent's notebook fails
 *   → {type: "notebook", vm, state} ← {type: "notebook", agents}  one agent's notebook state, reported at once
 *   → {type: "records"}           ← {type: "records", records: FleetRecord[]}
 *   → {type: "stats"}             ← {type: "stats", connected, dropped, executed, attempts}
 *   → {type: "delay", ms}         ← {type: "delay", agents}      commands take `ms` from now on
 *   → {type: "upgrades"}          ← {type: "upgrades", records: AgentUpgrades[]}  (with `upgrade` at start)
 *   → {type: "close"}             (the process exits; it also does when the parent goes away)
 * Any failure is answered with {type: "error", message}.
 */
import type { NotebookState } from "@nbfleet/shared";
import type { SeededVm } from "./sim-fleet.js";
import { SimFleet } from "./sim-fleet.js";
import type { SimUpgradeOptions, UpgradeRecord } from "./sim-upgrade.js";

export interface StartMessage {
  type: "start";
  url: string;
  /** Several replicas: agent i starts on urls[i % n] and dials the next one after a drop. */
  urls?: string[];
  vms: SeededVm[];
  /** How long each command takes on the agent (default 0: answered at once). */
  delayMs?: number;
  /** VM names whose agents fail every command. */
  fail?: string[];
  /** Keep every received command and every run (default true). */
  record?: boolean;
  /** Handshakes at once while connecting (default 200). */
  concurrency?: number;
  /** Reconnect with backoff when a link drops (default true); without, a drop stays visible. */
  reconnect?: boolean;
  /** Agents run `agent.upgrade` for real (download, verify, simulated restart). */
  upgrade?: SimUpgradeOptions;
}

export type FleetRequest =
  | StartMessage
  | { type: "unhealthy"; every: number }
  | { type: "notebook"; vm: string; state: NotebookState }
  | { type: "records" }
  | { type: "stats" }
  | { type: "delay"; ms: number }
  | { type: "upgrades" }
  | { type: "close" };

export interface FleetRecord {
  vm: string;
  /** Every command frame received (a redelivered id appears again). */
  received: Array<{ id: string; name: string; at: number }>;
  /** Every command run (a repeated id is answered from memory, not run again). */
  executed: Array<{ id: string; name: string; at: number }>;
}

/** One agent's upgrades and the version it reports now. */
export interface AgentUpgrades extends UpgradeRecord {
  vm: string;
  version: string;
}

export interface FleetStats {
  connected: number;
  dropped: number;
  executed: number;
  /** Connections dialled, first ones and reconnects, over every agent. */
  attempts: number;
}

export type FleetReply =
  | { type: "connected"; agents: number; ms: number; retries: number }
  | { type: "unhealthy"; agents: number }
  | { type: "notebook"; agents: number }
  | { type: "records"; records: FleetRecord[] }
  | ({ type: "stats" } & FleetStats)
  | { type: "delay"; agents: number }
  | { type: "upgrades"; records: AgentUpgrades[] }
  | { type: "error"; message: string };

const CONNECT_ATTEMPTS = 20;
let fleet: SimFleet | undefined;

const reply = (message: FleetReply) => process.send?.(message);

async function start(message: StartMessage): Promise<void> {
  const failing = new Set(message.fail ?? []);
  fleet = new SimFleet(message.url, message.vms, {
    record: message.record ?? true,
    commandDelayMs: message.delayMs ?? 0,
    ...(message.urls ? { urls: message.urls } : {}),
    ...(message.reconnect === false ? {} : { reconnect: { minMs: 50, maxMs: 1000 } }),
    ...(message.upgrade ? { upgrade: message.upgrade } : {}),
  });
  for (const agent of fleet.agents) {
    if (failing.has(agent.hostname))
      agent.options.fail = () => ({ code: "NBF_TEST_BROKEN", message: `${agent.hostname} fails on purpose` });
  }
  const { ms, retries } = await fleet.connectAllRetrying(message.concurrency ?? 200, CONNECT_ATTEMPTS);
  reply({ type: "connected", agents: fleet.connectedCount, ms, retries });
}

function failNotebooks(every: number): number {
  const agents = (fleet?.agents ?? []).filter((_, index) => every > 0 && index % every === 0);
  for (const agent of agents) agent.setNotebook("failed");
  return agents.length;
}

function records(): FleetRecord[] {
  return (fleet?.agents ?? []).map((agent) => ({
    vm: agent.hostname,
    received: agent.received
      .filter((r) => r.message.type === "command")
      .map((r) => ({
        id: (r.message as { id: string }).id,
        name: (r.message as { name: string }).name,
        at: r.at,
      })),
    executed: agent.executed.map((e) => ({ id: e.command.id, name: e.command.name, at: e.at })),
  }));
}

function stats(): FleetStats {
  const agents = fleet?.agents ?? [];
  const connected = fleet?.connectedCount ?? 0;
  return {
    connected,
    dropped: agents.length - connected,
    executed: agents.reduce((sum, a) => sum + a.executed.length, 0),
    attempts: agents.reduce((sum, a) => sum + a.connectAttempts, 0),
  };
}

process.on("message", (message: FleetRequest) => {
  switch (message.type) {
    case "start":
      start(message).catch((error) => reply({ type: "error", message: String(error) }));
      return;
    case "unhealthy":
      reply({ type: "unhealthy", agents: failNotebooks(message.every) });
      return;
    case "notebook": {
      const agent = fleet?.agents.find((a) => a.hostname === message.vm);
      agent?.setNotebook(message.state);
      reply({ type: "notebook", agents: agent ? 1 : 0 });
      return;
    }
    case "records":
      reply({ type: "records", records: records() });
      return;
    case "stats":
      reply({ type: "stats", ...stats() });
      return;
    case "delay":
      for (const agent of fleet?.agents ?? []) agent.options.commandDelayMs = message.ms;
      reply({ type: "delay", agents: fleet?.agents.length ?? 0 });
      return;
    case "upgrades":
      reply({
        type: "upgrades",
        records: (fleet?.agents ?? []).map((agent) => ({
          vm: agent.hostname,
          version: agent.version,
          runs: agent.upgrader?.record.runs ?? [],
          bytesReceived: agent.upgrader?.record.bytesReceived ?? 0,
        })),
      });
      return;
    case "close":
      fleet?.close();
      setTimeout(() => process.exit(0), 100).unref();
      return;
  }
});
process.on("disconnect", () => {
  fleet?.close();
  process.exit(0);
});
