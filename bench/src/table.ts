import os from "node:os";
import { acmeRows } from "./acme-table.js";
/**
 * The Markdown table of a run: one row per figure, each with when its part was measured (or
 * that it was carried over from an earlier run, and from when), and notes on how it was measured.
 */
import type { AgentBenchResult } from "./agent-bench.js";
import type { AzureBenchResult } from "./azure-bench.js";
import type { ConsoleBenchResult } from "./console-bench.js";
import type { ControllerBenchResult } from "./controller-bench.js";
import type { OperationRound, OperationsBenchResult } from "./operations-bench.js";
import type { RealAgentsBenchResult } from "./real-agents-bench.js";
import type { BulkRound, ReplicasBenchResult } from "./replicas-bench.js";
import { type Measured, PARTS, type PartFigures, type PartName, type Results } from "./results.js";
import { type Spread, median, quantile, spreadOf } from "./stats.js";
import type { TerminalBenchResult } from "./terminal-bench.js";
import { upgradeRows } from "./upgrade-table.js";

/** figure | measured | goal | notes */
type Row = [string, string, string, string];

const ROWS: { [K in PartName]: (figures: PartFigures[K]) => Row[] } = {
  agent: agentRows,
  controller: controllerRows,
  real: realRows,
  terminal: terminalRows,
  operations: operationsRows,
  azure: azureRows,
  replicas: replicasRows,
  console: consoleRows,
  upgrade: upgradeRows,
  acme: acmeRows,
};

export function renderTable(results: Results): string {
  const lines = PARTS.flatMap((name) => {
    const part = results.parts[name] as Measured<never>;
    const when = whenText(part, results);
    const rows = (ROWS[name] as (figures: unknown) => Row[])(part.figures);
    return rows.map(
      ([figure, measured, goal, notes]) => `| ${[figure, measured, goal, when, notes].join(" | ")} |`,
    );
  });
  return [
    `Machine: ${results.machine}`,
    "",
    "| figure | measured | goal | when | notes |",
    "|---|---|---|---|---|",
    ...lines,
  ].join("\n");
}

function whenText(part: Measured<unknown>, results: Results): string {
  const start = utc(part.startedAt);
  if (part.startedAt >= results.at) return `${start.slice(0, -4)}–${utc(part.finishedAt).slice(11)}`;
  const elsewhere = part.machine === results.machine ? "" : ` on ${part.machine}`;
  return `carried over from ${start}${elsewhere}`;
}

/** `2026-12-04 10:24 UTC` */
const utc = (iso: string) => `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
const fmt = (n: number, digits = 1) => n.toFixed(digits);
const count = (n: number) => n.toLocaleString("en-US");
const ratio = (s: Spread) =>
  `${fmt(s.median, 2)}× median (${fmt(s.min, 2)}–${fmt(s.max, 2)}×, p90 ${fmt(s.p90, 2)}×)`;

function agentRows(r: AgentBenchResult): Row[] {
  const restarts = r.ratios.map((x) => `${fmt(x, 2)}×`).join(", ");
  return [
    [
      "agent RSS, connected and reporting: max since start / median while idle",
      `${fmt(r.peakRssMB)} MB / ${fmt(r.steadyRssMB)} MB`,
      "max ≤ 60 MB",
      `the agent process alone (not Jupyter), ${r.runtime}, started with a bootstrap's arguments and linked to a real controller (${r.link}), state reports every ${r.reportIntervalSec} s; max = the larger of its kernel high-water mark (VmHWM) and its largest RSS sample (every 250 ms, ${fmt(r.sampledPeakRssMB)} MB) from spawn to the end of the idle window, start-up included (${fmt(r.startupMs / 1000)} s until connected with a healthy notebook); median of ${r.steadySamples} samples over the ${r.idleWindowSec} s idle window, during which the controller saw it connected at all ${r.connectedChecks} checks and received ${r.stateReports} state reports`,
    ],
    [
      "agent CPU, connected and idle",
      `${fmt(r.cpuPercent, 2)} %`,
      "≤ 1 %",
      `user + system of the agent process over the ${r.idleWindowSec} s idle window (health checks, state reports and pings included)`,
    ],
    [
      "notebook restart by the agent until /api answers (what the supervisor calls ready) / bare `jupyter notebook` start until /api answers",
      ratio(spreadOf(r.ratios)),
      "≤ 1.3×",
      `ratio per round, ${r.ratios.length} rounds (a restart through the agent's control socket, then a bare start with the same profile and user on the same port): ${restarts}; restart median ${fmt(median(r.agentRestartMs), 0)} ms (p90 ${fmt(quantile(r.agentRestartMs, 0.9), 0)}), bare start median ${fmt(median(r.bareStartMs), 0)} ms (p90 ${fmt(quantile(r.bareStartMs, 0.9), 0)})`,
    ],
  ];
}

function controllerRows(r: ControllerBenchResult): Row[] {
  const n = count(r.agents);
  const ms = (l: { p50: number; p99: number }) => `${fmt(l.p50)} / ${fmt(l.p99)} ms`;
  const load = (phase: string) => r.loadAverage[phase]?.map((v) => fmt(v, 2)).join(" ") ?? "?";
  const wait = (phase: string) => `${fmt(r.cpuWaitPercent[phase] ?? Number.NaN, 0)} %`;
  const [baselineSamples, fleetSamples] = r.rssSamplesPerWindow;
  return [
    [
      "agents held by one controller",
      `${count(r.heldAtEnd)} / ${n}`,
      `all ${n}`,
      `simulated agents in a process of their own; fewest during the ${r.steadyWindowSec} s window ${count(r.minHeldDuringSteady)}, dropped ${r.droppedByFleetCount}`,
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
      `(median RSS over the ${r.steadyWindowSec} s steady window with the fleet, ${fmt(r.rssIdleMB)} MB of ${fleetSamples} samples − median RSS over an equal window with ${n} VMs seeded and no agent, ${fmt(r.rssBaselineMB)} MB of ${baselineSamples} samples) / ${n}; one sample a second on both sides`,
    ],
    [
      "controller CPU with the fleet idle",
      `${fmt(r.cpuPercentSteady)} % of a core`,
      "—",
      `${r.steadyWindowSec} s; state reports and pings every ${r.reportIntervalSec} s; the sim fleet used ${fmt(r.fleetCpuPercentSteady)} %`,
    ],
    ...r.commands.map(
      (c): Row => [
        `controller overhead per command (simulated agents answer at once) p50 / p99, ${c.concurrency} in flight`,
        ms(c.roundTripMs),
        "p99 ≤ 50 ms",
        `${c.count} notebook restarts over the fleet, POST until the long poll answers succeeded (${c.succeeded} did), ${fmt(c.throughputPerSec, 0)}/s; createdAt→finishedAt in the store ${ms(c.storeCreatedToFinishedMs)}; the controller waited for a CPU ${wait(`commands ×${c.concurrency}`)} of the time; no Jupyter restarts here (see the real-agent row)`,
      ],
    ),
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

function realRows(r: RealAgentsBenchResult): Row[] {
  return [
    [
      "notebook restart through the controller with real agents p50 / p90, 1 in flight",
      `${fmt(r.roundTrip.median, 0)} / ${fmt(r.roundTrip.p90, 0)} ms`,
      "—",
      `${r.restarts} restarts one at a time, round-robin over ${r.machines} local sandboxes created through \`nbfleet server\` (local provider: real bootstrap, bundled agent, Debian's Jupyter); POST /v1/vms/{name}/notebook/restart until GET /v1/commands/{id}?wait answers succeeded (all did): controller → agent → Jupyter stopped and started until /api answers → result; max ${fmt(r.roundTrip.max, 0)} ms; createdAt→finishedAt in the store ${fmt(r.store.median, 0)} / ${fmt(r.store.p90, 0)} ms; creating the ${r.machines} machines until healthy took ${fmt(r.createMs / 1000)} s`,
    ],
  ];
}

function terminalRows(r: TerminalBenchResult): Row[] {
  return [
    [
      "terminal keystroke echo through the controller p50 / p99",
      `${fmt(r.p50Ms)} / ${fmt(r.p99Ms)} ms`,
      "p99 ≤ 20 ms",
      `${count(r.keystrokes)} keys typed one at a time into a login shell on loopback (client → controller → agent in its own process → node-pty → readline and back), after ${r.warmup} untimed; max ${fmt(r.maxMs)} ms; load average ${r.loadAverage?.map((v) => fmt(v, 2)).join(" → ") ?? "?"}`,
    ],
  ];
}

function operationsRows(r: OperationsBenchResult): Row[] {
  const shape = `over ${count(r.agents)} agents, ${r.concurrency} at a time, ${r.delayMs} ms each: total / ideal`;
  const how = `each of ${r.starts} controller starts on a fresh store seeded with ${count(r.agents)} VMs, a fresh \`nbfleet server\` process and a fresh simulated fleet; every operation checked (the bench fails otherwise): all ${count(r.agents)} targets succeeded, none failed, each agent ran one restart, exactly ${r.concurrency} running at once at the peak on the agents' clocks`;
  const row = (kind: OperationRound["kind"], figure: string, spread: Spread, what: string): Row => {
    const rounds = r.rounds.filter((x) => x.kind === kind);
    const ratios = rounds.map((x) => `${fmt(x.ratio, 2)}×`).join(", ");
    return [
      `${figure} ${shape}`,
      ratio(spread),
      "≤ 1.2×",
      `${what}: ${ratios}; ideal ${fmt(r.idealMs / 1000, 2)} s; ${how}; the median one: ${details(medianRound(rounds), r)}`,
    ];
  };
  return [
    row(
      "first",
      "bulk notebook restart, first operation after a controller start,",
      r.first,
      `${r.first.count} operations, one per start`,
    ),
    row(
      "warm",
      "bulk notebook restart, later operations on a running controller,",
      r.warmRatios,
      `${r.warmRatios.count} operations, ${r.warm} per start after the first`,
    ),
  ];
}

function medianRound(rounds: OperationRound[]): OperationRound {
  return [...rounds].sort((a, b) => a.ratio - b.ratio)[Math.floor((rounds.length - 1) / 2)]!;
}

function details(x: OperationRound, r: OperationsBenchResult): string {
  const spread = (s: { mean: number; p50: number; p90: number }) =>
    `mean ${fmt(s.mean)} / p50 ${fmt(s.p50, 0)} / p90 ${fmt(s.p90, 0)}`;
  return `POST /v1/operations until its operation.finished event ${fmt(x.totalMs / 1000, 2)} s (the operation's own start→end ${fmt(x.serverMs / 1000, 2)} s); first command on an agent ${fmt(x.firstCommandMs, 0)} ms after the POST, end seen ${fmt(x.lastResultToEndMs, 0)} ms after the last result; a freed slot's next command reached an agent after ${spread(x.slotGapMs)} ms, a restart answered ${spread(x.lateMs)} ms late; controller CPU ${fmt(x.controllerCpuMsPerTarget, 2)} ms and sim fleet ${fmt(x.fleetCpuMsPerTarget, 2)} ms per target; the controller waited ${fmt(x.controllerRunQueueWaitMs / 1000, 1)} s for a CPU (load average ${fmt(x.loadAverage1m, 2)}); ${count(r.agents)} VMs seeded in ${fmt(median(r.seedMs) / 1000, 1)} s and connected in ${fmt(median(r.connectMs) / 1000, 1)} s (medians over the starts)`;
}

function azureRows(r: AzureBenchResult): Row[] {
  const { baseline: b, throttled: t } = r;
  const ratios = spreadOf(r.roundRatios);
  const pct = Math.round(r.throttleRate * 100);
  return [
    [
      `Azure (emulator): ${r.vms} VMs created at once, ${pct} % of writes answered 429`,
      `${fmt(r.timeRatio, 2)}× median (${fmt(ratios.min, 2)}–${fmt(ratios.max, 2)}×) the time without 429s`,
      "≤ 1.5×",
      `${ratios.count} rounds, each a run without 429s and one with them: ${r.roundRatios.map((x) => `${fmt(x, 2)}×`).join(", ")}; the median round ${fmt(t.totalMs / 1000)} s against ${fmt(b.totalMs / 1000)} s, and the rows below are from it; every create succeeded (the bench fails otherwise); real Azure SDK over HTTPS, ${r.maxConcurrency} in flight (${t.maxInFlight} seen), Retry-After ${r.retryAfterMs} ms, emulated operations ${r.durations.network} ms network / ${r.durations.compute} ms VM; ${t.failed} failed`,
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

function replicasRows(r: ReplicasBenchResult): Row[] {
  const n = count(r.agents);
  const ms = (l: { p50: number; p99: number }) => `${fmt(l.p50)} / ${fmt(l.p99)} ms`;
  const each = (f: (x: ReplicasBenchResult["perReplica"][number]) => string) =>
    r.perReplica.map((x, i) => `${String.fromCharCode(65 + i)} ${f(x)}`).join(", ");
  const setup = `${r.replicas} \`nbfleet server\` replicas (processes of their own) on one PostgreSQL 15 (reached over ${r.pgVia === "socket" ? "its unix socket" : "loopback TCP"}), ${n} simulated agents in ${r.fleets} processes, agent i starting on replica i mod ${r.replicas} and dialling the next one after a drop; state reports every ${r.reportIntervalSec} s`;
  const b = r.bulk;
  const kinds = (round: ReplicasBenchResult["bulk"]["rounds"][number]) =>
    Object.entries(round.notifyByKind)
      .map(([kind, k]) => `${kind} ${count(k)}`)
      .join(", ");
  const mid = [...b.rounds].sort((x, y) => x.ratio - y.ratio)[Math.floor((b.rounds.length - 1) / 2)];
  const rows: Row[] = [
    [
      `agents held by ${r.replicas} replicas`,
      `${r.perReplica.map((x) => count(x.held)).join(" + ")} = ${count(r.perReplica.reduce((a, x) => a + x.held, 0))} / ${n}`,
      "all 30,000",
      `${setup}; all connected ${fmt(r.connectMs / 1000)} s after the fleets started (100 handshakes at a time per fleet); seeding ${n} VMs into PostgreSQL took ${fmt(r.seedMs / 1000)} s`,
    ],
    [
      "replica RSS per agent",
      each((x) => `${fmt(x.rssPerAgentKB)} KB`),
      "—",
      `per replica: (median RSS over the ${r.steadyWindowSec} s steady window − median over an equal window with the VMs seeded and no agent) / agents it held; ${each((x) => `${fmt(x.rssBaselineMB, 0)} → ${fmt(x.rssIdleMB, 0)} MB`)}`,
    ],
    [
      "replica CPU with the fleet idle",
      each((x) => `${fmt(x.cpuPercentIdle)} %`),
      "—",
      `% of a core over the ${r.steadyWindowSec} s window (reports, pings, heartbeats, leases); the sim fleets used ${fmt(r.fleetCpuPercentIdle)} %; load average ${r.loadAverage["after steady window"]?.map((v) => fmt(v, 2)).join(" ") ?? "?"}${stolen(r.stealPercent?.idle)}`,
    ],
    [
      "replica GC pauses with the fleet idle: mean / max",
      each(
        (x) =>
          `${fmt((x.idleLoop.gcMinorMs + x.idleLoop.gcMajorMs) / Math.max(1, x.idleLoop.gcCount))} / ${fmt(x.idleLoop.gcMaxMs)} ms`,
      ),
      "—",
      `over the ${r.steadyWindowSec} s window, minor and major collections: ${each((x) => `${x.idleLoop.gcCount} pauses, ${fmt(x.idleLoop.gcMinorMs + x.idleLoop.gcMajorMs, 0)} ms in all`)}; event-loop delay p99 ${each((x) => `${fmt(x.idleLoop.p99)} ms`)} (a paused or CPU-starved replica delays every request and agent message it handles)`,
    ],
    [
      "notebook restart round trip, API on one replica and the agent on another, p50 / p99, 1 in flight",
      ms(r.restart),
      "p99 ≤ 50 ms",
      `${r.restart.count} restarts (${r.restart.succeeded} succeeded), the API replica in turn, the target an agent another replica holds (checked in vm_status.replica_id), simulated agents answering at once: POST until GET /v1/commands/{id}?wait answers; max ${fmt(r.restart.max)} ms; createdAt→finishedAt in the store ${ms(r.restart.storeMs)}${stolen(r.stealPercent?.restarts)}`,
    ],
    [
      `GET /v1/vms?health=unhealthy over ${n} VMs on PostgreSQL p50 / p99`,
      ms(r.query),
      "p99 ≤ 50 ms",
      `${r.query.count} requests one after another over the replicas in turn, a page of ${r.query.itemsPerPage} of ${count(r.query.unhealthyVms)} unhealthy${stolen(r.stealPercent?.queries)}`,
    ],
    [
      `bulk restart of every agent across the replicas, ${b.concurrency} at a time, ${b.delayMs} ms each: total / ideal`,
      ratio(b.ratios),
      "≤ 1.3×",
      `${b.rounds.length} operations, POSTed on the replicas in turn, each checked (all ${n} targets succeeded, one restart per agent, exactly ${b.concurrency} running at once at the peak on the agents' clocks): ${b.rounds.map((x) => `${fmt(x.ratio, 2)}×${x.ranOn ? ` (POSTed on ${x.postedOn}, run by ${x.ranOn})` : ""}`).join(", ")}; ideal ${fmt(b.idealMs / 1000, 1)} s${mid ? `; the median one ${fmt(mid.totalMs / 1000, 2)} s, a freed slot's next command after ${fmt(mid.slotGapMs.p50, 0)} ms p50 / ${fmt(mid.slotGapMs.p90, 0)} ms p90${bulkBreakdown(mid)}` : ""}`,
    ],
    [
      "NOTIFYs the bulk restart needed",
      `${fmt(b.notifyPerSec.median, 0)}/s median (${fmt(b.notifyPerSec.min, 0)}–${fmt(b.notifyPerSec.max, 0)}/s)`,
      "—",
      `counted by a LISTEN of the bench's own on the replicas' channel during each operation: ${b.rounds.map((x) => `${count(x.notifications)} (${fmt(x.notifyBytes / 1024, 0)} KB; ${kinds(x)})`).join("; ")}`,
    ],
    [
      "kill -9 of the replica holding a third of the agents: until every agent is connected again",
      `${fmt(r.kill.reconnectMs / 1000)} s`,
      "≤ 30 s",
      `${count(r.kill.killedHeld)} agents lost their replica; the others then held ${r.kill.heldAfter.map(count).join(" + ")}; the agents dialled ${count(r.kill.attempts)} connections meanwhile (simulated agents: backoff 50 ms growing to 1 s with full jitter, the next replica each time); one kill per run`,
    ],
  ];
  if (r.single) rows.push(...onPostgres(controllerRows(r.single), "the controller part's run"));
  if (r.singleBulk)
    rows.push(
      ...onPostgres(
        operationsRows(r.singleBulk),
        "the operations part's run (every agent on the replica that runs the operation, so no signal between replicas)",
      ),
    );
  return rows;
}

/** A single-controller part's rows as measured once more with NBFLEET_DATABASE_URL. */
function onPostgres(rows: Row[], run: string): Row[] {
  return rows.map(
    ([figure, measured, goal, notes]): Row => [
      `${figure} — PostgreSQL`,
      measured,
      goal,
      `${run} with NBFLEET_DATABASE_URL (one replica, the same database server): ${notes}`,
    ],
  );
}

function consoleRows(r: ConsoleBenchResult): Row[] {
  const fleet = `${count(r.agents)} simulated agents, ${count(r.unhealthyVms)} unhealthy, reports every ${r.reportIntervalSec} s; Debian's Chromium through playwright-core`;
  return [
    [
      "console fleet page, navigation to a usable table p50 / p90",
      `${fmt(r.loadMs.p50, 0)} / ${fmt(r.loadMs.p90, 0)} ms (max ${fmt(r.loadMs.max, 0)})`,
      "p90 ≤ 1.0 s",
      `${r.loadMs.count} loads, each a new tab of the signed-in browser (assets cached); usable = ≥ ${r.loadMs.rowsShown} rows with name and health; ${fleet}`,
    ],
    [
      "console health change to the row showing it p50 / p99",
      `${fmt(r.changeMs.p50, 0)} / ${fmt(r.changeMs.p99, 0)} ms (max ${fmt(r.changeMs.max, 0)})`,
      "p99 ≤ 500 ms",
      `${r.changeMs.count} changes of one agent (unhealthy, healthy in turn), from its report to the row's new text, through /v1/events`,
    ],
    [
      "console JS heap over live updates, start → end (max), slope",
      `${fmt(r.heap.startMB)} → ${fmt(r.heap.endMB)} MB (max ${fmt(r.heap.maxMB)}), ${fmt(r.heap.slopeMBPerMin, 2)} MB/min`,
      "≤ 150 MB, not growing",
      `${r.heap.minutes} min on the fleet page: the fleet's reports plus ${r.heap.changesPerSec} health changes/s on random agents; ${r.heap.samples} samples after a forced GC`,
    ],
    [
      "console assets gzipped, first page (all)",
      `${fmt(r.assets.firstPageGzipKB)} KB (${fmt(r.assets.allGzipKB)} KB, ${r.assets.files} files)`,
      "≤ 300 KB first page",
      "index.html and the scripts and styles it names, gzip -9; all = every .js/.css under dist/assets",
    ],
  ];
}

/** Where a bulk round's time and CPU went (absent from results written before it was measured). */
/** The hypervisor's share of a window, for the replicas' rows (older results have none). */
function stolen(percent: number | undefined): string {
  return percent === undefined
    ? ""
    : `; the hypervisor took ${fmt(percent)} % of the machine's CPU time (steal)`;
}

function bulkBreakdown(
  round: Partial<Pick<BulkRound, "phases" | "cpuMsPerTarget" | "coresAtIdealRate" | "stealPercent">>,
): string {
  const { phases, cpuMsPerTarget: cpu, coresAtIdealRate } = round;
  const parts: string[] = [];
  if (phases)
    parts.push(
      ` (result stored → next command committed ${fmt(phases.resultToNextCreatedMs.p50, 0)} ms p50, committed → sent by its agent's replica ${fmt(phases.createdToSentMs.p50, 0)} ms p50)`,
    );
  if (cpu && coresAtIdealRate !== undefined)
    parts.push(
      `; CPU per target ${fmt(cpu.replicas, 2)} ms in the replicas, ${fmt(cpu.postgres, 2)} ms in PostgreSQL, ${fmt(cpu.fleets, 2)} ms in the simulated fleets: the ideal rate would need ${fmt(coresAtIdealRate, 2)} of this machine's ${os.cpus().length} cores`,
    );
  parts.push(stolen(round.stealPercent));
  return parts.join("");
}
