/**
 * `pnpm bench`: runs the benchmarks, prints a Markdown table (pasted into the README) and
 * writes the raw figures to bench/results/latest.json. With --only, the other part's figures
 * are kept from the previous latest.json (their rows say when they were measured).
 *
 *   pnpm bench [--only agent|controller|terminal|operations]
 *     agent:      [--idle 60] [--rounds 9]
 *     controller: [--agents 10000] [--steady 60] [--commands 1000] [--concurrency 1,50]
 *                 [--queries 200] [--cpu-prof DIR]   (also for operations)
 *     terminal:   [--keystrokes 1000]
 *     operations: [--ops-agents 10000] [--ops-concurrency 500] [--ops-delay-ms 200] [--ops-rounds 3]
 *     azure:      [--azure-vms 50] [--azure-429 0.2] [--azure-retry-after-ms 1000]
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { type AgentBenchResult, runAgentBench } from "./src/agent-bench.js";
import { type AzureBenchResult, runAzureBench } from "./src/azure-bench.js";
import { type ControllerBenchResult, runControllerBench } from "./src/controller-bench.js";
import { describeMachine, median, quantile } from "./src/machine.js";
import { type OperationsBenchResult, runOperationsBench } from "./src/operations-bench.js";
import { type TerminalBenchResult, runTerminalBench } from "./src/terminal-bench.js";

const { values } = parseArgs({
  options: {
    only: { type: "string" },
    idle: { type: "string", default: "60" },
    rounds: { type: "string", default: "9" },
    agents: { type: "string", default: "10000" },
    steady: { type: "string", default: "60" },
    commands: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "1,50" },
    queries: { type: "string", default: "200" },
    "cpu-prof": { type: "string" },
    keystrokes: { type: "string", default: "1000" },
    "ops-agents": { type: "string", default: "10000" },
    "ops-concurrency": { type: "string", default: "500" },
    "ops-delay-ms": { type: "string", default: "200" },
    "ops-rounds": { type: "string", default: "3" },
    "azure-vms": { type: "string", default: "50" },
    "azure-429": { type: "string", default: "0.2" },
    "azure-retry-after-ms": { type: "string", default: "1000" },
  },
});
if (values.only && !["agent", "controller", "terminal", "azure", "operations"].includes(values.only))
  throw new Error(`--only must be agent, controller, terminal, azure or operations, not ${values.only}`);

const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), "results");
const at = new Date().toISOString();
const machine = describeMachine();
type Part<T> = T & { at?: string };
interface Raw {
  machine: string;
  at: string;
  agent?: Part<AgentBenchResult>;
  controller?: Part<ControllerBenchResult>;
  terminal?: Part<TerminalBenchResult>;
  operations?: Part<OperationsBenchResult>;
  azure?: Part<AzureBenchResult>;
}
const previous = JSON.parse(
  await readFile(path.join(dir, "latest.json"), "utf8").catch(() => "{}"),
) as Partial<Raw>;
const raw: Raw = { machine, at };
const stamp = <T extends object>(part: Part<T> | undefined, fallbackAt: string | undefined) =>
  part ? { ...part, at: part.at ?? fallbackAt } : undefined;

if (!values.only || values.only === "agent") {
  raw.agent = {
    ...(await runAgentBench({ idleWindowSec: Number(values.idle), rounds: Number(values.rounds) })),
    at,
  };
} else {
  raw.agent = stamp(previous.agent, previous.at);
}

if (!values.only || values.only === "controller") {
  raw.controller = {
    ...(await runControllerBench({
      agents: Number(values.agents),
      steadySec: Number(values.steady),
      commands: Number(values.commands),
      concurrency: values.concurrency.split(",").map(Number),
      queries: Number(values.queries),
      unhealthyEvery: 20,
      reportIntervalSec: 15,
      ...(values["cpu-prof"] ? { profileDir: path.resolve(values["cpu-prof"]) } : {}),
    })),
    at,
  };
} else {
  raw.controller = stamp(previous.controller, previous.at);
}

if (!values.only || values.only === "terminal") {
  raw.terminal = { ...(await runTerminalBench({ keystrokes: Number(values.keystrokes) })), at };
} else {
  raw.terminal = stamp(previous.terminal, previous.at);
}

if (!values.only || values.only === "operations") {
  raw.operations = {
    ...(await runOperationsBench({
      agents: Number(values["ops-agents"]),
      concurrency: Number(values["ops-concurrency"]),
      delayMs: Number(values["ops-delay-ms"]),
      rounds: Number(values["ops-rounds"]),
      ...(values["cpu-prof"] ? { profileDir: path.resolve(values["cpu-prof"]) } : {}),
    })),
    at,
  };
} else {
  raw.operations = stamp(previous.operations, previous.at);
}

const fmt = (n: number, digits = 1) => n.toFixed(digits);
const spreadText = (s: { mean: number; p50: number; p90: number } | undefined) =>
  s ? `mean ${fmt(s.mean)} / p50 ${fmt(s.p50, 0)} / p90 ${fmt(s.p90, 0)}` : "?";
const count = (n: number) => n.toLocaleString("en-US");
const earlier = (part: { at?: string }) => (part.at && part.at !== at ? ` (measured ${part.at})` : "");

if (!values.only || values.only === "azure") {
  raw.azure = {
    ...(await runAzureBench({
      vms: Number(values["azure-vms"]),
      throttleRate: Number(values["azure-429"]),
      retryAfterMs: Number(values["azure-retry-after-ms"]),
    })),
    at,
  };
} else {
  raw.azure = stamp(previous.azure, previous.at);
}

function agentRows(r: Part<AgentBenchResult>): string[][] {
  return [
    ["agent idle RSS (max over window)", `${fmt(r.agentRssMB)} MB`, "≤ 60 MB", `${r.runtime}${earlier(r)}`],
    ["agent idle CPU", `${fmt(r.agentCpuPercent, 2)} %`, "≤ 1 %", `${r.idleWindowSec} s window`],
    [
      "notebook restart until healthy / bare start until /api",
      `${fmt(r.restartRatio, 2)}× (${fmt(median(r.agentRestartMs), 0)} ms / ${fmt(median(r.bareStartMs), 0)} ms)`,
      "≤ 1.3×",
      `medians of ${r.agentRestartMs.length}; p90 restart ${fmt(quantile(r.agentRestartMs, 0.9), 0)} ms`,
    ],
  ];
}

function controllerRows(r: Part<ControllerBenchResult>): string[][] {
  const n = count(r.agents);
  const ms = (l: { p50: number; p99: number }) => `${fmt(l.p50)} / ${fmt(l.p99)} ms`;
  const load = (phase: string) => r.loadAverage[phase]?.map((v) => fmt(v, 2)).join(" ") ?? "?";
  const wait = (phase: string) => `${fmt(r.cpuWaitPercent[phase] ?? Number.NaN, 0)} %`;
  return [
    [
      "agents held by one controller",
      `${count(r.heldAtEnd)} / ${n}`,
      `all ${n}`,
      `simulated agents in a process of their own; fewest during the ${r.steadyWindowSec} s window ${count(r.minHeldDuringSteady)}, dropped ${r.droppedByFleetCount}${earlier(r)}`,
    ],
    [
      `time until all ${n} connected`,
      `${fmt(r.connectMs / 1000)} s`,
      "—",
      `200 handshakes at a time, ${r.connectRetries} retries; seeding ${n} VMs into the store took ${fmt(r.seedMs / 1000)} s`,
    ],
    [
      "controller RSS per agent",
      `${fmt(r.rssPerAgentKB)} KB`,
      "≤ 50 KB",
      `(${fmt(r.rssIdleMB)} MB with the fleet − ${fmt(r.rssBaselineMB)} MB with ${n} VMs and no agent) / ${n}`,
    ],
    [
      "controller CPU with the fleet idle",
      `${fmt(r.cpuPercentSteady)} % of a core`,
      "—",
      `${r.steadyWindowSec} s; state reports and pings every ${r.reportIntervalSec} s; the sim fleet used ${fmt(r.fleetCpuPercentSteady)} %`,
    ],
    ...r.commands.map((c) => [
      `notebook restart round trip p50 / p99, ${c.concurrency} in flight`,
      ms(c.roundTripMs),
      "p99 ≤ 50 ms",
      `${c.count} commands over the fleet, POST until the long poll answers succeeded (${c.succeeded} did), ${fmt(c.throughputPerSec, 0)}/s; createdAt→finishedAt in the store ${ms(c.storeCreatedToFinishedMs)}; the controller waited for a CPU ${wait(`commands ×${c.concurrency}`)} of the time`,
    ]),
    [
      "GET /v1/vms?health=unhealthy p50 / p99",
      ms(r.query),
      "p99 ≤ 50 ms",
      `${r.query.count} requests one after another, a page of ${r.query.itemsPerPage} of ${r.unhealthyVms} unhealthy among ${n} VMs; the controller waited for a CPU ${wait("queries")} of the time`,
    ],
    [
      "machine load average (1/5/15 min)",
      load("after steady window"),
      "—",
      `other work shares this machine; before connecting ${load("before connect")}, after the last commands ${load(`after commands ×${r.commands.at(-1)?.concurrency}`)}`,
    ],
  ];
}

function terminalRows(r: Part<TerminalBenchResult>): string[][] {
  return [
    [
      "terminal keystroke echo through the controller p50 / p99",
      `${fmt(r.p50Ms)} / ${fmt(r.p99Ms)} ms`,
      "p99 ≤ 20 ms",
      `${count(r.keystrokes)} keys typed one at a time into a login shell on loopback (client → controller → agent in its own process → node-pty → readline and back), after ${r.warmup} untimed; max ${fmt(r.maxMs)} ms; load average ${r.loadAverage?.map((v) => fmt(v, 2)).join(" → ") ?? "?"}${earlier(r)}`,
    ],
  ];
}

function azureRows(r: Part<AzureBenchResult>): string[][] {
  const { baseline: b, throttled: t } = r;
  const pct = Math.round(r.throttleRate * 100);
  return [
    [
      `Azure (emulator): ${r.vms} VMs created at once, ${pct} % of writes answered 429`,
      `${fmt(t.totalMs / 1000)} s = ${fmt(r.timeRatio, 2)}× the run without 429s (${fmt(b.totalMs / 1000)} s)`,
      "≤ 1.5×",
      `real Azure SDK over HTTPS, ${r.maxConcurrency} in flight (${t.maxInFlight} seen), Retry-After ${r.retryAfterMs} ms, emulated operations ${r.durations.network} ms network / ${r.durations.compute} ms VM; ${t.failed} failed${earlier(r)}`,
    ],
    [
      "Resource Manager writes per VM after the shared network exists",
      `${fmt(t.writesPerVm, 2)} (${fmt(b.writesPerVm, 2)} without 429s)`,
      "≤ 8",
      `every attempt counted: ${t.writes} writes of which ${t.injected429} answered 429 (and ${t.bucket429} by the subscription's buckets); ${t.attempts} HTTP attempts with polls`,
    ],
    [
      "orphaned resources after the throttled run",
      `${t.orphans} (left after deleting every VM: ${t.leftAfterDelete})`,
      "0",
      `without 429s: ${b.orphans} orphans, ${b.leftAfterDelete} left after delete; deletes that failed: ${t.deleteFailed} and ${b.deleteFailed}`,
    ],
  ];
}

function operationsRows(r: Part<OperationsBenchResult>): string[][] {
  return [
    [
      `bulk notebook restart over ${count(r.agents)} agents, ${r.concurrency} at a time, ${r.delayMs} ms each: total / ideal`,
      `${fmt(r.ratio, 2)}× (${fmt(r.totalMs / 1000, 2)} s / ${fmt(r.idealMs / 1000, 2)} s)${r.roundRatios ? `, median of ${r.roundRatios.length}` : ""}`,
      "≤ 1.2×",
      `${r.roundRatios ? `operations one after another on the same fleet: ${r.roundRatios.map((x) => `${fmt(x, 2)}×`).join(", ")} (the first one after the controller started first); figures below from the median one (round ${r.medianRound}): ` : ""}POST /v1/operations until its operation.finished event (the operation's own start→end ${fmt(r.serverMs / 1000, 2)} s), ${count(r.succeeded)} succeeded; at most ${r.peakConcurrency} restarts running at once on the agents' clocks; first command on an agent ${r.firstCommandMs === undefined ? "?" : fmt(r.firstCommandMs, 0)} ms after the POST, end seen ${r.lastResultToEndMs === undefined ? "?" : fmt(r.lastResultToEndMs, 0)} ms after the last result; a freed slot's next command reached an agent after ${spreadText(r.slotGapMs)} ms, a restart answered ${spreadText(r.lateMs)} ms late; controller CPU ${fmt(r.controllerCpuMsPerTarget, 2)} ms and sim fleet ${fmt(r.fleetCpuMsPerTarget, 2)} ms per target; the controller waited ${fmt(r.controllerRunQueueWaitMs / 1000, 1)} s for a CPU (load average ${fmt(r.loadAverage1m, 2)})${earlier(r)}`,
    ],
  ];
}

const rows = [
  ...(raw.agent ? agentRows(raw.agent) : []),
  ...(raw.controller ? controllerRows(raw.controller) : []),
  ...(raw.terminal ? terminalRows(raw.terminal) : []),
  ...(raw.operations ? operationsRows(raw.operations) : []),
  ...(raw.azure ? azureRows(raw.azure) : []),
];
const table = [
  `Machine: ${machine}`,
  "",
  "| figure | measured | goal | notes |",
  "|---|---|---|---|",
  ...rows.map((r) => `| ${r.join(" | ")} |`),
].join("\n");
console.log(table);
await mkdir(dir, { recursive: true });
await writeFile(path.join(dir, "latest.json"), `${JSON.stringify(raw, null, 2)}\n`);
await writeFile(path.join(dir, "latest.md"), `${table}\n`);
process.exit(0);
