/**
 * A fleet of simulated agents in a process of its own (forked with IPC), so it outlives a
 * controller that a test kills and reconnects to the restarted one. Each agent answers
 * commands after `delayMs` (failing for the names in `fail`), reconnects with backoff, and
 * remembers what it received and ran, with timestamps on its own clock.
 *
 * Messages (process.send / on "message"):
 *   → {type: "start", url, vms: SeededVm[], delayMs, fail?: string[], record?: boolean, concurrency?}
 *   ← {type: "connected", agents, ms}
 *   → {type: "records"}   ← {type: "records", records: FleetRecord[]}
 *   → {type: "stats"}     ← {type: "stats", connected, executed}
 *   → {type: "close"}     (the process exits)
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { SeededVm } from "./sim-fleet.js";
import { SimFleet } from "./sim-fleet.js";

export interface StartMessage {
  type: "start";
  url: string;
  vms: SeededVm[];
  delayMs: number;
  fail?: string[];
  record?: boolean;
  concurrency?: number;
}

export interface FleetRecord {
  vm: string;
  /** Every command frame received (a redelivered id appears again). */
  received: Array<{ id: string; name: string; at: number }>;
  /** Every command run (a repeated id is answered from memory, not run again). */
  executed: Array<{ id: string; name: string; at: number }>;
}

export type FleetReply =
  | { type: "connected"; agents: number; ms: number }
  | { type: "records"; records: FleetRecord[] }
  | { type: "stats"; connected: number; executed: number }
  | { type: "error"; message: string };

const MAX_ATTEMPTS = 20;
let fleet: SimFleet | undefined;

const reply = (message: FleetReply) => process.send?.(message);

async function start(message: StartMessage): Promise<void> {
  const failing = new Set(message.fail ?? []);
  fleet = new SimFleet(message.url, message.vms, {
    record: message.record ?? true,
    commandDelayMs: message.delayMs,
    reconnect: { minMs: 50, maxMs: 1000 },
  });
  for (const agent of fleet.agents) {
    if (failing.has(agent.hostname))
      agent.options.fail = () => ({ code: "NBF_TEST_BROKEN", message: `${agent.hostname} fails on purpose` });
  }
  const started = performance.now();
  let next = 0;
  const agents = fleet.agents;
  const worker = async () => {
    while (next < agents.length) {
      const agent = agents[next++]!;
      for (let attempt = 1; ; attempt++) {
        try {
          await agent.connect();
          break;
        } catch (error) {
          // The controller may say "come back later" (1013) while thousands connect at once.
          if (attempt >= MAX_ATTEMPTS) throw error;
          await sleep(Math.random() * Math.min(5000, 50 * 2 ** attempt));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(message.concurrency ?? 200, agents.length) }, worker));
  reply({ type: "connected", agents: fleet.connectedCount, ms: performance.now() - started });
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

process.on("message", (message: { type: string }) => {
  switch (message.type) {
    case "start":
      start(message as StartMessage).catch((error) => reply({ type: "error", message: String(error) }));
      return;
    case "records":
      reply({ type: "records", records: records() });
      return;
    case "stats":
      reply({
        type: "stats",
        connected: fleet?.connectedCount ?? 0,
        executed: (fleet?.agents ?? []).reduce((sum, a) => sum + a.executed.length, 0),
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
