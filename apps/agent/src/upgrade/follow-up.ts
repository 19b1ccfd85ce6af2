/**
 * What a freshly started agent does about upgrades, once it is connected to its controller:
 *
 * - it is the new version of a pending upgrade (`upgrade.json` names it) and its health is good
 *   (no check failing with the notebook running, or the notebook deliberately stopped): it
 *   confirms — removes `upgrade.json` (the launcher's watchdog stands down), prunes versions
 *   other than `current` and `previous`, and sends `agent.upgrade.completed` {from, to};
 * - the launcher rolled back (`rollback.json`): it sends `agent.upgrade.rolled_back` (error)
 *   {from, to, reason}, then removes the file.
 *
 * Events go out on the welcomed connection (or are kept by the link until the next one), and
 * are in the agent's own event log either way.
 */
import { rm } from "node:fs/promises";
import type { AgentEvent, AgentState } from "@nbfleet/shared";
import type { InstallLayout } from "./install-layout.js";
import { readPendingUpgrade, readRollback } from "./pending.js";
import { pruneVersions } from "./version-links.js";

export type RecordEvent = (
  level: AgentEvent["level"],
  kind: string,
  message: string,
  data?: Record<string, unknown>,
) => void;

export interface FollowUpOptions {
  layout: InstallLayout;
  version: string;
  state: () => AgentState;
  record: RecordEvent;
  /** Told about a file it could not remove (the follow-up is tried again at the next chance). */
  onError?: (error: Error) => void;
}

export const UPGRADE_COMPLETED = "agent.upgrade.completed";
export const UPGRADE_ROLLED_BACK = "agent.upgrade.rolled_back";

export class UpgradeFollowUp {
  private connected = false;
  private busy: Promise<void> = Promise.resolve();
  private done = false;

  constructor(private readonly options: FollowUpOptions) {}

  /** The link was welcomed (call on every welcome). */
  linkConnected(): Promise<void> {
    this.connected = true;
    return this.next();
  }

  linkLost(): void {
    this.connected = false;
  }

  /** The agent's state changed: a pending confirmation may now be due. */
  stateChanged(): Promise<void> {
    return this.next();
  }

  private next(): Promise<void> {
    if (this.done || !this.connected) return this.busy;
    this.busy = this.busy.then(() => this.step()).catch((error: Error) => this.options.onError?.(error));
    return this.busy;
  }

  private async step(): Promise<void> {
    if (this.done || !this.connected) return;
    const { layout, version, record } = this.options;
    const rollback = await readRollback(layout);
    if (rollback) {
      record(
        "error",
        UPGRADE_ROLLED_BACK,
        `the agent upgrade from ${rollback.from} to ${rollback.to} was rolled back: ${rollback.reason}`,
        { from: rollback.from, to: rollback.to, reason: rollback.reason },
      );
      await rm(layout.rollbackFile, { force: true });
    }
    const pending = await readPendingUpgrade(layout);
    if (!pending || pending.to !== version) {
      this.done = true;
      return;
    }
    if (!healthyEnough(this.options.state())) return;
    await rm(layout.upgradeFile, { force: true });
    this.done = true;
    const pruned = await pruneVersions(layout).catch(() => []);
    record("info", UPGRADE_COMPLETED, `agent upgraded from ${pending.from} to ${pending.to}`, {
      from: pending.from,
      to: pending.to,
      ...(pruned.length > 0 ? { pruned } : {}),
    });
  }
}

/**
 * Good enough to keep the new version: the notebook runs and no check fails (a warning such as
 * a busy CPU is not the agent's fault), or nobody wants it running.
 */
export function healthyEnough(state: AgentState): boolean {
  if (state.notebook.state === "stopped") return true;
  return (
    state.notebook.state === "running" &&
    state.health.status !== "unhealthy" &&
    state.health.status !== "unknown"
  );
}
