/**
 * Bulk notebook restart: one operation over N simulated agents, `concurrency` at a time, each
 * simulated restart taking `delayMs`, timed against the ideal N ÷ concurrency × delayMs.
 *
 * The operator's case is the first operation after a controller start as often as a later one,
 * so the bench starts the controller `starts` times, each time from scratch: a fresh store
 * seeded with N VMs, a fresh `nbfleet server` process and a fresh simulated fleet (processes of
 * their own; this one only drives the API and reads the agents' records). On each start it runs
 * the first operation, then `warm` more one after another; first and warm operations are
 * summarized apart (median and p90 of total / ideal).
 *
 * Every operation is checked, and the bench fails otherwise: every target succeeded (none
 * failed, skipped or cancelled), every agent ran exactly one restart, and the most restarts
 * running at once on the agents' clocks is exactly the requested concurrency — a run whose
 * targets fail fast, or that runs more at once than asked, cannot pass for a fast one.
 */
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type ControllerProcess,
  api,
  startControllerProcess,
  stopControllerProcess,
} from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { SimFleetProcess } from "@nbfleet/testkit/sim-fleet-remote";
import { waitFor } from "@nbfleet/testkit/wait";
import { seedStore } from "./controller-bench.js";
import { openEvents } from "./event-stream.js";
import { type OperationTrace, traceOperation } from "./operation-records.js";
import { cpuSeconds, runQueueWaitSeconds } from "./proc-usage.js";
import { type Spread, spreadOf } from "./stats.js";

export interface OperationsBenchOptions {
  agents: number;
  concurrency: number;
  delayMs: number;
  /** Controller starts, each on a freshly seeded store with a fresh fleet. */
  starts: number;
  /** Operations after the first one on each start. */
  warm: number;
  /** Write a V8 CPU profile of each controller process here (node --cpu-prof). */
  profileDir?: string;
  /**
   * Run the controller on PostgreSQL (NBFLEET_DATABASE_URL), a fresh database each start, made
   * by this; unset, on its embedded SQLite store.
   */
  freshDatabaseUrl?: () => Promise<string>;
}

export interface OperationRound extends OperationTrace {
  /** Which controller start (1-based) it ran on. */
  start: number;
  kind: "first" | "warm";
  /** POST until the `operation.finished` event arrives on `GET /v1/events` (no polling load). */
  totalMs: number;
  ratio: number;
  /** The operation's own createdAt → finishedAt on the controller's clock. */
  serverMs: number;
  succeeded: number;
  /** CPU time the controller and the fleet used during the operation, per target. */
  controllerCpuMsPerTarget: number;
  fleetCpuMsPerTarget: number;
  /** Time the controller's main thread waited for a CPU during the operation (other processes' doing). */
  controllerRunQueueWaitMs: number;
  loadAverage1m: number;
}

export interface OperationsBenchResult {
  agents: number;
  concurrency: number;
  delayMs: number;
  starts: number;
  warm: number;
  idealMs: number;
  /** total / ideal of the first operation after each start, and of every later one. */
  first: Spread;
  warmRatios: Spread;
  rounds: OperationRound[];
  /** Per start: seeding the store, and the fleet connecting. */
  seedMs: number[];
  connectMs: number[];
}

export async function runOperationsBench(options: OperationsBenchOptions): Promise<OperationsBenchResult> {
  const rounds: OperationRound[] = [];
  const seedMs: number[] = [];
  const connectMs: number[] = [];
  for (let start = 1; start <= options.starts; start++) {
    const run = await oneControllerStart(options, start);
    rounds.push(...run.rounds);
    seedMs.push(run.seedMs);
    connectMs.push(run.connectMs);
  }
  const ratios = (kind: OperationRound["kind"]) => rounds.filter((r) => r.kind === kind).map((r) => r.ratio);
  return {
    agents: options.agents,
    concurrency: options.concurrency,
    delayMs: options.delayMs,
    starts: options.starts,
    warm: options.warm,
    idealMs: idealMs(options),
    first: spreadOf(ratios("first")),
    warmRatios: spreadOf(ratios("warm")),
    rounds,
    seedMs,
    connectMs,
  };
}

const idealMs = (o: OperationsBenchOptions) => (o.agents / o.concurrency) * o.delayMs;

type Timed = Omit<OperationRound, keyof OperationTrace> & { window: { startedAt: number; endedAt: number } };

async function oneControllerStart(options: OperationsBenchOptions, start: number) {
  const dataDir = makeDataDir("nbf-bench-ops-");
  const token = `nbf_${randomBytes(24).toString("base64url")}`;
  let controller: ControllerProcess | undefined;
  let fleet: SimFleetProcess | undefined;
  try {
    const seedStarted = performance.now();
    const databaseUrl = await options.freshDatabaseUrl?.();
    const vms = await seedStore(dataDir, token, options.agents, databaseUrl);
    const seedMs = performance.now() - seedStarted;

    controller = await startControllerProcess(
      dataDir,
      await freePort(),
      token,
      {
        NBFLEET_REPORT_INTERVAL_SEC: "30",
        NBFLEET_LOG_LEVEL: "error",
        ...(databaseUrl ? { NBFLEET_DATABASE_URL: databaseUrl } : {}),
      },
      options.profileDir ? ["--cpu-prof", `--cpu-prof-dir=${options.profileDir}`] : [],
    );
    fleet = new SimFleetProcess();
    const { ms: connectMs } = await fleet.start({
      url: controller.url,
      vms,
      delayMs: options.delayMs,
      record: true,
    });
    const call = api(controller);
    await waitFor(
      "every agent connected",
      async () =>
        (await call<{ agentsConnected: number }>("GET", "/healthz")).body.agentsConnected >= options.agents,
      120_000,
    );

    const timed: Timed[] = [];
    for (let op = 0; op <= options.warm; op++) {
      // Each operation starts on a settled fleet: connection work (welcomes, pending-command
      // lookups) or the previous operation's tail is over, as it would be when an operator acts.
      await sleep(2000);
      timed.push(await runOperation(controller, fleet.pid, options, start, op === 0 ? "first" : "warm"));
    }
    const fleetRecords = await fleet.records();
    const rounds = timed.map(({ window, ...round }) => {
      const full: OperationRound = { ...round, ...traceOperation(fleetRecords, window, options) };
      assertHonest(full, options);
      return full;
    });
    return { rounds, seedMs, connectMs };
  } finally {
    await fleet?.close();
    if (controller) await stopControllerProcess(controller);
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function runOperation(
  controller: ControllerProcess,
  fleetPid: number,
  options: OperationsBenchOptions,
  start: number,
  kind: OperationRound["kind"],
): Promise<Timed> {
  const call = api(controller);
  const controllerPid = controller.process.pid!;
  const before = await usage(controllerPid, fleetPid);
  const finished = await openEvents(controller, "operation.finished");
  const started = performance.now();
  const startedAt = Date.now();
  const created = await call<{ operation: { id: string } }>("POST", "/v1/operations", {
    action: "notebook.restart",
    selector: { all: true },
    maxConcurrency: options.concurrency,
  });
  if (created.status !== 201)
    throw new Error(`POST /v1/operations: ${created.status} ${JSON.stringify(created.body)}`);
  const id = created.body.operation.id;
  await finished.until((data) => data.operationId === id);
  const totalMs = performance.now() - started;
  const endedAt = Date.now();
  finished.close();
  const op = (await call<OperationView>("GET", `/v1/operations/${id}?targetsLimit=0`)).body;
  const after = await usage(controllerPid, fleetPid);
  const { succeeded, ...others } = op.counts;
  const notSucceeded = Object.entries(others).filter(([, n]) => n > 0);
  if (op.state !== "succeeded" || succeeded !== options.agents || notSucceeded.length > 0)
    throw new Error(
      `operations bench, start ${start}, ${kind} operation: ${op.state} with ${succeeded} of ${options.agents} targets succeeded${notSucceeded.map(([state, n]) => `, ${n} ${state}`).join("")}`,
    );
  return {
    start,
    kind,
    totalMs,
    ratio: totalMs / idealMs(options),
    serverMs: Date.parse(op.finishedAt!) - Date.parse(op.createdAt),
    succeeded,
    controllerCpuMsPerTarget: ((after.controllerCpu - before.controllerCpu) * 1000) / options.agents,
    fleetCpuMsPerTarget: ((after.fleetCpu - before.fleetCpu) * 1000) / options.agents,
    controllerRunQueueWaitMs: (after.controllerWait - before.controllerWait) * 1000,
    loadAverage1m: os.loadavg()[0]!,
    window: { startedAt, endedAt },
  };
}

/** The agents' own records agree: each ran one restart, never more at once than asked, and exactly that many. */
function assertHonest(round: OperationRound, options: OperationsBenchOptions): void {
  const where = `operations bench, start ${round.start}, ${round.kind} operation`;
  if (round.executed !== options.agents)
    throw new Error(`${where}: the agents ran ${round.executed} restarts, expected ${options.agents}`);
  const expected = Math.min(options.concurrency, options.agents);
  if (round.peakConcurrency !== expected)
    throw new Error(
      `${where}: at most ${round.peakConcurrency} restarts ran at once on the agents, expected exactly ${expected}`,
    );
}

interface OperationView {
  state: string;
  createdAt: string;
  finishedAt: string | null;
  counts: Record<string, number> & { succeeded: number };
}

async function usage(controllerPid: number, fleetPid: number) {
  return {
    controllerCpu: await cpuSeconds(controllerPid),
    fleetCpu: await cpuSeconds(fleetPid),
    controllerWait: await runQueueWaitSeconds(controllerPid),
  };
}
