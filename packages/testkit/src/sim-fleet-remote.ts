/**
 * The parent's side of sim-fleet-process.ts: starts the fleet process and turns its messages
 * into calls. One request of a kind at a time; a reply of that kind answers the oldest one.
 */
import type { ChildProcess } from "node:child_process";
import path from "node:path";
import type { NotebookState } from "@nbfleet/shared";
import { spawnTs, stopChild } from "./processes.js";
import { repoRoot } from "./repo.js";
import type {
  AgentUpgrades,
  FleetRecord,
  FleetReply,
  FleetRequest,
  FleetStats,
  StartMessage,
} from "./sim-fleet-process.js";

const SCRIPT = path.join(repoRoot, "packages/testkit/src/sim-fleet-process.ts");

type ReplyOf<T extends FleetReply["type"]> = Extract<FleetReply, { type: T }>;

export class SimFleetProcess {
  readonly process: ChildProcess;
  private readonly waiting: Array<{
    type: FleetReply["type"];
    resolve: (reply: FleetReply) => void;
    reject: (error: Error) => void;
  }> = [];

  /** `nodeFlags`: for node itself, e.g. a benchmark's `--cpu-prof`. */
  constructor(options: { nodeFlags?: string[] } = {}) {
    this.process = spawnTs(SCRIPT, [], {
      manySockets: true,
      stdio: ["ignore", "inherit", "inherit", "ipc"],
      nodeFlags: options.nodeFlags,
    });
    this.process.on("message", (reply: FleetReply) => {
      if (reply.type === "error") return this.failAll(new Error(`sim fleet: ${reply.message}`));
      const at = this.waiting.findIndex((w) => w.type === reply.type);
      if (at >= 0) this.waiting.splice(at, 1)[0]!.resolve(reply);
    });
    this.process.on("exit", (code, signal) =>
      this.failAll(new Error(`the sim fleet exited (${signal ?? code})`)),
    );
  }

  get pid(): number {
    return this.process.pid!;
  }

  /** Creates the agents and connects them all; resolves once every one was welcomed. */
  start(options: Omit<StartMessage, "type">): Promise<ReplyOf<"connected">> {
    return this.ask({ type: "start", ...options }, "connected");
  }

  /** Every `every`-th agent reports a failed notebook from now on; resolves with how many. */
  async failNotebooks(every: number): Promise<number> {
    return (await this.ask({ type: "unhealthy", every }, "unhealthy")).agents;
  }

  /** One agent's notebook goes to `state` and reports it at once; resolves once sent. */
  async setNotebook(vm: string, state: NotebookState): Promise<void> {
    const { agents } = await this.ask({ type: "notebook", vm, state }, "notebook");
    if (agents !== 1) throw new Error(`sim fleet: no agent for ${vm}`);
  }

  async records(): Promise<FleetRecord[]> {
    return (await this.ask({ type: "records" }, "records")).records;
  }

  async stats(): Promise<FleetStats> {
    const { type: _, ...stats } = await this.ask({ type: "stats" }, "stats");
    return stats;
  }

  /** Each agent's upgrades (started with `upgrade`) and the version it reports now. */
  async upgrades(): Promise<AgentUpgrades[]> {
    return (await this.ask({ type: "upgrades" }, "upgrades")).records;
  }

  /** Every command takes `ms` on the agents from now on. */
  async setDelay(ms: number): Promise<void> {
    await this.ask({ type: "delay", ms }, "delay");
  }

  /** Asks the fleet to exit and waits until it has (SIGKILL after `killAfterMs`). */
  close(killAfterMs = 10_000): Promise<void> {
    return stopChild(
      this.process,
      (child) =>
        child.connected ? child.send({ type: "close" } satisfies FleetRequest) : child.kill("SIGTERM"),
      killAfterMs,
    );
  }

  private ask<T extends FleetReply["type"]>(request: FleetRequest, type: T): Promise<ReplyOf<T>> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ type, resolve: resolve as (reply: FleetReply) => void, reject });
      this.process.send(request);
    });
  }

  private failAll(error: Error): void {
    for (const waiter of this.waiting.splice(0)) waiter.reject(error);
  }
}
