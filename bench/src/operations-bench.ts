/**
 * Issue 5's first figure: a bulk notebook restart over N simulated agents, `concurrency` at a
 * time, each simulated restart taking `delayMs`. Total time is compared with the ideal
 * N ÷ concurrency × delayMs. The controller (`nbfleet server`) and the simulated fleet each run
 * in a process of their own; this process only drives the API and reads the agents' records,
 * from which it also takes the peak number of restarts running at once (it must equal the
 * concurrency, never more). Several operations run one after another on the same fleet (the
 * first one after a controller start included); the figure is the median one, and every
 * round's ratio is reported beside it.
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildServer, loadSettings } from "@nbfleet/controller";
import {
  type ControllerProcess,
  api,
  freePort,
  makeControllerDataDir,
  startControllerProcess,
  stopControllerProcess,
} from "@nbfleet/testkit/controller-process";
import { type SeededVm, seedVms } from "@nbfleet/testkit/sim-fleet";
import type { FleetRecord, FleetReply, StartMessage } from "@nbfleet/testkit/sim-fleet-process";
import { SimProvider } from "@nbfleet/testkit/sim-provider";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const FLEET_SCRIPT = path.join(REPO, "packages/testkit/src/sim-fleet-process.ts");
const TSX = path.join(REPO, "node_modules/tsx/dist/loader.mjs");

export interface OperationsBenchOptions {
  agents: number;
  concurrency: number;
  delayMs: number;
  /** Operations run one after another on the same fleet; the figure is the median one. */
  rounds: number;
  /** Write a V8 CPU profile of the controller here (node --cpu-prof). */
  profileDir?: string;
}

export interface OperationsBenchResult {
  agents: number;
  concurrency: number;
  delayMs: number;
  idealMs: number;
  /** POST until the `operation.finished` event arrives on `GET /v1/events` (no polling load). */
  totalMs: number;
  /** The operation's own createdAt → finishedAt on the controller's clock. */
  serverMs: number;
  ratio: number;
  /** Every round's total / ideal, in the order they ran. */
  roundRatios: number[];
  /** Which round (1-based) is the median one the other figures come from. */
  medianRound: number;
  succeeded: number;
  /** Most restarts running at once on the agents (their own timestamps). */
  peakConcurrency: number;
  /** POST until the first agent received its command, and the last result until the end was seen. */
  firstCommandMs: number;
  lastResultToEndMs: number;
  /**
   * Where the time over ideal goes, on the agents' clock: `gap` is a freed slot's result until
   * the next command reached an agent (the controller's turnaround); `late` is how much later
   * than `delayMs` a simulated restart answered (the fleet process's own timer lag).
   */
  slotGapMs: Spread;
  lateMs: Spread;
  seedMs: number;
  connectMs: number;
  /** CPU time the controller and the fleet used during the operation, per target. */
  controllerCpuMsPerTarget: number;
  fleetCpuMsPerTarget: number;
  /** Time the controller's main thread waited for a CPU during the operation (other processes' doing). */
  controllerRunQueueWaitMs: number;
  loadAverage1m: number;
}

export async function runOperationsBench(options: OperationsBenchOptions): Promise<OperationsBenchResult> {
  const dataDir = await makeControllerDataDir();
  const token = `nbf_${randomBytes(24).toString("base64url")}`;
  let controller: ControllerProcess | undefined;
  let fleet: ChildProcess | undefined;
  try {
    const seedStarted = performance.now();
    const vms = await seed(dataDir, token, options.agents);
    const seedMs = performance.now() - seedStarted;

    controller = await startControllerProcess(
      dataDir,
      await freePort(),
      token,
      {
        NBFLEET_REPORT_INTERVAL_SEC: "30",
        NBFLEET_LOG_LEVEL: "error",
      },
      options.profileDir ? ["--cpu-prof", `--cpu-prof-dir=${options.profileDir}`] : [],
    );
    const sim = startFleet();
    fleet = sim.child;
    const connected = sim.next("connected");
    sim.child.send({
      type: "start",
      url: controller.url,
      vms,
      delayMs: options.delayMs,
      record: true,
    } satisfies StartMessage);
    const connectMs = Number(((await connected) as { ms: number }).ms);
    const call = api(controller);
    await waitUntil(
      async () => {
        const health = (await call<{ agentsConnected: number }>("GET", "/healthz")).body;
        return health.agentsConnected >= options.agents;
      },
      120_000,
      "every agent connected",
    );

    const fleetPid = sim.child.pid!;
    const controllerPid = controller.process.pid!;
    const idealMs = (options.agents / options.concurrency) * options.delayMs;
    const rounds: Round[] = [];
    for (let round = 0; round < options.rounds; round++) {
      // Each operation starts on a settled fleet: connection work (welcomes, pending-command
      // lookups) or the previous operation's tail is over, as it would be when an operator acts.
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const before = await usage(controllerPid, fleetPid);
      const finishedEvents = await openEvents(controller, "operation.finished");
      const started = performance.now();
      const startedAtMs = Date.now();
      const created = await call<{ operation: { id: string } }>("POST", "/v1/operations", {
        action: "notebook.restart",
        selector: { all: true },
        maxConcurrency: options.concurrency,
      });
      if (created.status !== 201)
        throw new Error(`POST /v1/operations: ${created.status} ${JSON.stringify(created.body)}`);
      const id = created.body.operation.id;
      await finishedEvents.until((data) => data.operationId === id);
      const totalMs = performance.now() - started;
      const endedAtMs = Date.now();
      finishedEvents.close();
      const op = (await call<OperationView>("GET", `/v1/operations/${id}?targetsLimit=0`)).body;
      const after = await usage(controllerPid, fleetPid);
      rounds.push({
        totalMs,
        startedAtMs,
        endedAtMs,
        serverMs: Date.parse(op.finishedAt!) - Date.parse(op.createdAt),
        succeeded: op.counts.succeeded,
        controllerCpuMsPerTarget: ((after.controllerCpu - before.controllerCpu) * 1000) / options.agents,
        fleetCpuMsPerTarget: ((after.fleetCpu - before.fleetCpu) * 1000) / options.agents,
        controllerRunQueueWaitMs: (after.controllerWait - before.controllerWait) * 1000,
        loadAverage1m: os.loadavg()[0]!,
      });
    }
    const records = sim.next("records");
    sim.child.send({ type: "records" });
    const fleetRecords = ((await records) as { records: FleetRecord[] }).records;
    // The figure is the median round; every round's ratio is kept beside it.
    const median = [...rounds].sort((a, b) => a.totalMs - b.totalMs)[Math.floor(rounds.length / 2)]!;
    const window = (at: number) => at >= median.startedAtMs && at <= median.endedAtMs;
    const inRound = fleetRecords.map((r) => ({
      ...r,
      received: r.received.filter((e) => window(e.at)),
      executed: r.executed.filter((e) => window(e.at)),
    }));
    const received = inRound.flatMap((r) => r.received.map((e) => e.at));
    const executed = inRound.flatMap((r) => r.executed.map((e) => e.at));
    return {
      ...options,
      idealMs,
      totalMs: median.totalMs,
      serverMs: median.serverMs,
      ratio: median.totalMs / idealMs,
      roundRatios: rounds.map((r) => r.totalMs / idealMs),
      medianRound: rounds.indexOf(median) + 1,
      succeeded: median.succeeded,
      peakConcurrency: peak(inRound),
      firstCommandMs: Math.min(...received) - median.startedAtMs,
      lastResultToEndMs: median.endedAtMs - Math.max(...executed),
      slotGapMs: spread(slotGaps(received, executed, options.concurrency)),
      lateMs: spread(lateness(inRound, options.delayMs)),
      seedMs,
      connectMs,
      controllerCpuMsPerTarget: median.controllerCpuMsPerTarget,
      fleetCpuMsPerTarget: median.fleetCpuMsPerTarget,
      controllerRunQueueWaitMs: median.controllerRunQueueWaitMs,
      loadAverage1m: median.loadAverage1m,
    };
  } finally {
    fleet?.send({ type: "close" });
    if (controller) await stopControllerProcess(controller);
    await rm(dataDir, { recursive: true, force: true });
  }
}

interface Round {
  totalMs: number;
  startedAtMs: number;
  endedAtMs: number;
  serverMs: number;
  succeeded: number;
  controllerCpuMsPerTarget: number;
  fleetCpuMsPerTarget: number;
  controllerRunQueueWaitMs: number;
  loadAverage1m: number;
}

interface OperationView {
  state: string;
  createdAt: string;
  finishedAt: string | null;
  counts: { succeeded: number };
}

async function seed(dataDir: string, adminToken: string, count: number): Promise<SeededVm[]> {
  const settings = loadSettings({
    env: {},
    flags: { dataDir, listen: "127.0.0.1:0", adminToken, logLevel: "silent" },
  });
  const app = await buildServer(settings, { provider: new SimProvider() });
  try {
    return await seedVms(app, { count });
  } finally {
    await app.close();
  }
}

function startFleet(): { child: ChildProcess; next: (type: FleetReply["type"]) => Promise<FleetReply> } {
  const child = fork(FLEET_SCRIPT, [], {
    execArgv: ["--import", TSX],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const waiting: Array<{ type: string; resolve: (m: FleetReply) => void; reject: (e: Error) => void }> = [];
  child.on("message", (message: FleetReply) => {
    if (message.type === "error") {
      for (const w of waiting.splice(0)) w.reject(new Error(`sim fleet: ${message.message}`));
      return;
    }
    const at = waiting.findIndex((w) => w.type === message.type);
    if (at >= 0) waiting.splice(at, 1)[0]!.resolve(message);
  });
  child.on("exit", (code, signal) => {
    for (const w of waiting.splice(0)) w.reject(new Error(`the sim fleet exited (${signal ?? code})`));
  });
  return {
    child,
    next: (type) => new Promise((resolve, reject) => waiting.push({ type, resolve, reject })),
  };
}

/** An SSE stream of the controller's events of one kind; `until` resolves at the first match. */
async function openEvents(controller: ControllerProcess, kind: string) {
  const abort = new AbortController();
  const response = await fetch(`${controller.url}/v1/events?kind=${encodeURIComponent(kind)}`, {
    headers: { authorization: `Bearer ${controller.token}`, accept: "text/event-stream" },
    signal: abort.signal,
  });
  if (!response.ok || !response.body) throw new Error(`GET /v1/events: ${response.status}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  return {
    async until(match: (data: Record<string, unknown>) => boolean): Promise<void> {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) throw new Error("the event stream ended before the operation finished");
        buffer += value;
        for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const line = frame.split("\n").find((l) => l.startsWith("data: "));
          if (line && match((JSON.parse(line.slice(6)) as { data: Record<string, unknown> }).data ?? {}))
            return;
        }
      }
    },
    close: () => abort.abort(),
  };
}

/** Most commands between "received" and "result sent" at the same moment, on the agents' clocks. */
function peak(records: FleetRecord[]): number {
  const edges: Array<[number, number]> = [];
  for (const record of records) {
    for (const ran of record.executed) {
      const got = record.received.find((r) => r.id === ran.id);
      if (got) edges.push([got.at, 1], [ran.at, -1]);
    }
  }
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let running = 0;
  let most = 0;
  for (const [, delta] of edges) {
    running += delta;
    most = Math.max(most, running);
  }
  return most;
}

export interface Spread {
  mean: number;
  p50: number;
  p90: number;
}

function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const mean = sorted.reduce((sum, v) => sum + v, 0) / Math.max(1, sorted.length);
  return { mean, p50: at(0.5), p90: at(0.9) };
}

/** The i-th result frees the slot the (i + concurrency)-th command takes. */
function slotGaps(received: number[], executed: number[], concurrency: number): number[] {
  const starts = [...received].sort((a, b) => a - b);
  const ends = [...executed].sort((a, b) => a - b);
  const gaps: number[] = [];
  for (let i = 0; i + concurrency < starts.length && i < ends.length; i++)
    gaps.push(starts[i + concurrency]! - ends[i]!);
  return gaps;
}

function lateness(records: FleetRecord[], delayMs: number): number[] {
  return records.flatMap((r) =>
    r.executed.map((e) => e.at - (r.received.find((x) => x.id === e.id)?.at ?? e.at) - delayMs),
  );
}

/** CPU seconds (user + system) from /proc/PID/stat; run-queue wait from /proc/PID/schedstat. */
async function usage(controllerPid: number, fleetPid: number) {
  const cpu = async (pid: number) => {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  };
  const wait = async (pid: number) =>
    Number((await readFile(`/proc/${pid}/schedstat`, "utf8")).split(" ")[1]) / 1e9;
  return {
    controllerCpu: await cpu(controllerPid),
    fleetCpu: await cpu(fleetPid),
    controllerWait: await wait(controllerPid),
  };
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
