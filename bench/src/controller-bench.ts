/**
 * Issue 3's figures: one controller (its own process) holding N simulated agents (another
 * process) that report every 15 s, measured from here (a third process):
 * - time until the controller counts all N connected;
 * - controller RSS per agent: (median RSS over the steady window with the fleet − median RSS over
 *   a window as long with the N VMs seeded and no agent) / N, both sampled every second;
 * - controller CPU over a steady window;
 * - `GET /v1/vms?health=unhealthy` latency over N VMs (every 20th agent reports a failed notebook);
 * - the controller's own overhead per command: notebook restarts spread over the fleet, POST until
 *   the long poll answers, with simulated agents that answer at once (real agents: real-agents-bench).
 * Everything is on 127.0.0.1; the children are ended whatever happens.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { buildServer, loadSettings } from "@nbfleet/controller";
import { ControllerChild } from "@nbfleet/testkit/controller-child-remote";
import { type SeededVm, seedVms } from "@nbfleet/testkit/sim-fleet";
import { SimFleetProcess } from "@nbfleet/testkit/sim-fleet-remote";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import { JsonClient } from "./http-client.js";
import { cpuSeconds, rssBytes, runQueueWaitSeconds } from "./proc-usage.js";
import { median, quantile } from "./stats.js";

export interface ControllerBenchOptions {
  agents: number;
  /** Seconds of the steady window (CPU, RSS, connections held). */
  steadySec: number;
  /** Restart commands per round. */
  commands: number;
  /** One round of commands per entry, with that many in flight at once. */
  concurrency: number[];
  queries: number;
  /** Every n-th agent reports an unhealthy notebook (0: none). */
  unhealthyEvery: number;
  reportIntervalSec: number;
  /** Write a V8 CPU profile of the controller here (node --cpu-prof). */
  profileDir?: string;
  /** PostgreSQL instead of the embedded SQLite (an empty database). */
  databaseUrl?: string;
}

export interface Latencies {
  p50: number;
  p99: number;
  max: number;
  count: number;
}

export interface ControllerBenchResult {
  agents: number;
  reportIntervalSec: number;
  seedMs: number;
  connectMs: number;
  fleetConnectMs: number;
  connectRetries: number;
  heldAfterSteady: number;
  heldAtEnd: number;
  minHeldDuringSteady: number;
  droppedByFleetCount: number;
  /** RSS samples (one a second) behind the two medians: [without agents, with the fleet]. */
  rssSamplesPerWindow: [number, number];
  /** Median RSS over a window of `steadyWindowSec` with the VMs seeded and no agent connected. */
  rssBaselineMB: number;
  /** Median RSS over the steady window with the fleet connected. */
  rssIdleMB: number;
  rssPerAgentKB: number;
  rssAfterCommandsMB: number;
  steadyWindowSec: number;
  cpuPercentSteady: number;
  fleetCpuPercentSteady: number;
  unhealthyVms: number;
  query: Latencies & { path: string; itemsPerPage: number };
  commands: CommandRound[];
  /** How late the controller's event loop ran, per phase (p50/p99/max in ms). */
  loopDelayMs: Record<string, { p50: number; p99: number; max: number }>;
  /** Share of each phase the controller's event loop was runnable but waited for a CPU (other processes). */
  cpuWaitPercent: Record<string, number>;
  /** Garbage-collection pauses of the controller, per phase. */
  gc: Record<string, { minorMs: number; majorMs: number; maxMs: number; count: number }>;
  loadAverage: Record<string, [number, number, number]>;
}

export interface CommandRound {
  count: number;
  concurrency: number;
  succeeded: number;
  roundTripMs: Latencies;
  postMs: Latencies;
  storeCreatedToFinishedMs: Latencies;
  throughputPerSec: number;
  cpuPercent: number;
}

interface CommandView {
  id: string;
  state: string;
  createdAt: string;
  finishedAt: string | null;
}

const CONNECT_TIMEOUT_MS = 600_000;
const QUERY_PATH = "/v1/vms?health=unhealthy";

export async function runControllerBench(options: ControllerBenchOptions): Promise<ControllerBenchResult> {
  const loadAverage: ControllerBenchResult["loadAverage"] = {};
  const noteLoad = (phase: string) => {
    loadAverage[phase] = os.loadavg().map((n) => Math.round(n * 100) / 100) as [number, number, number];
  };
  noteLoad("start");
  const dataDir = await mkdtemp(path.join(tmpdir(), "nbf-bench-controller-"));
  const adminToken = `nbf_${randomBytes(32).toString("base64url")}`;
  const children: ControllerChild[] = [];
  let fleet: SimFleetProcess | undefined;
  let client: JsonClient | undefined;
  try {
    const seedStarted = performance.now();
    const vms = await seedStore(dataDir, adminToken, options.agents, options.databaseUrl);
    const seedMs = performance.now() - seedStarted;

    const controller = await ControllerChild.start({
      env: {
        ...process.env,
        NBFLEET_DATA_DIR: dataDir,
        NBFLEET_LISTEN: "127.0.0.1:0",
        NBFLEET_ADMIN_TOKEN: adminToken,
        NBFLEET_REPORT_INTERVAL_SEC: String(options.reportIntervalSec),
        NBFLEET_LOG_LEVEL: "error",
        ...(options.databaseUrl ? { NBFLEET_DATABASE_URL: options.databaseUrl } : {}),
      },
      nodeFlags: options.profileDir ? ["--cpu-prof", `--cpu-prof-dir=${options.profileDir}`] : [],
      manySockets: true,
    });
    children.push(controller);
    const url = controller.url;
    client = new JsonClient(url, adminToken);
    const api = client;
    const connected = async () =>
      (await api.expect<{ agentsConnected: number }>(200, "GET", "/healthz")).agentsConnected;

    // Baseline: the controller with N VMs in its store and no agent, settled, sampled like the
    // steady window below (same length, same cadence, same statistic).
    await sleep(3000);
    const baselineSamples = await sampleEverySecond(controller.pid, options.steadySec);
    const rssBaseline = median(baselineSamples);
    noteLoad("before connect");

    // Per phase: how late the controller's loop ran, its GC pauses, how long it waited for a CPU.
    const loopDelayMs: ControllerBenchResult["loopDelayMs"] = {};
    const gc: ControllerBenchResult["gc"] = {};
    const cpuWaitPercent: ControllerBenchResult["cpuWaitPercent"] = {};
    let waitMark = { wait: await runQueueWaitSeconds(controller.pid), at: performance.now() };
    const loopDelay = async (phase: string) => {
      const now = { wait: await runQueueWaitSeconds(controller.pid), at: performance.now() };
      cpuWaitPercent[phase] = ((now.wait - waitMark.wait) / ((now.at - waitMark.at) / 1000)) * 100;
      waitMark = now;
      const loop = await controller.loop();
      loopDelayMs[phase] = { p50: Number(loop.p50), p99: Number(loop.p99), max: Number(loop.max) };
      gc[phase] = {
        minorMs: Number(loop.gcMinorMs),
        majorMs: Number(loop.gcMajorMs),
        maxMs: Number(loop.gcMaxMs),
        count: Number(loop.gcCount),
      };
    };
    await loopDelay("baseline");
    // Agents do not reconnect, so that a dropped connection stays visible.
    fleet = new SimFleetProcess();
    const fleetConnecting = fleet.start({ url, vms, concurrency: 200, record: false, reconnect: false });
    fleetConnecting.catch(() => {}); // awaited below, once the controller counts every agent
    const connectStarted = performance.now();
    for (;;) {
      if ((await connected()) >= options.agents) break;
      if (performance.now() - connectStarted > CONNECT_TIMEOUT_MS)
        throw new Error(
          `only ${await connected()} of ${options.agents} agents connected after ${CONNECT_TIMEOUT_MS} ms`,
        );
      await sleep(100);
    }
    const connectMs = performance.now() - connectStarted;
    const fleetConnected = await fleetConnecting;
    noteLoad("connected");

    const expectedUnhealthy = await fleet.failNotebooks(options.unhealthyEvery);
    await waitFor(
      async () => {
        const page = await api.expect<{ items: unknown[] }>(200, "GET", `${QUERY_PATH}&limit=1000`);
        return page.items.length === expectedUnhealthy;
      },
      60_000,
      `${expectedUnhealthy} unhealthy VMs listed`,
    );

    await loopDelay("connect");
    // One report interval to settle after the connection burst, then the steady window:
    // state reports and pings every reportIntervalSec, nothing else.
    await sleep(options.reportIntervalSec * 1000);
    await loopDelay("settle");
    const steadyStarted = performance.now();
    const cpuBefore = await cpuSeconds(controller.pid);
    const fleetCpuBefore = await cpuSeconds(fleet.pid);
    let minHeld = options.agents;
    const rssSamples = await sampleEverySecond(controller.pid, options.steadySec, async (n) => {
      if (n % 5 === 0) minHeld = Math.min(minHeld, await connected());
    });
    const steadyElapsed = (performance.now() - steadyStarted) / 1000;
    const cpuPercentSteady = (((await cpuSeconds(controller.pid)) - cpuBefore) / steadyElapsed) * 100;
    const fleetCpuPercentSteady = (((await cpuSeconds(fleet.pid)) - fleetCpuBefore) / steadyElapsed) * 100;
    const heldAfterSteady = await connected();
    minHeld = Math.min(minHeld, heldAfterSteady);
    // Idle with the fleet: the median of the window's samples (the heap breathes with each GC).
    const rssIdle = median(rssSamples);
    noteLoad("after steady window");
    await loopDelay("steady");

    const queryMs: number[] = [];
    let itemsPerPage = 0;
    for (let i = 0; i < options.queries; i++) {
      const started = performance.now();
      const page = await api.expect<{ items: unknown[] }>(200, "GET", QUERY_PATH);
      queryMs.push(performance.now() - started);
      itemsPerPage = page.items.length;
    }
    noteLoad("after queries");
    await loopDelay("queries");

    const commands: CommandRound[] = [];
    for (const concurrency of options.concurrency) {
      commands.push(await restartCommands(api, options, concurrency, controller.pid));
      noteLoad(`after commands ×${concurrency}`);
      await loopDelay(`commands ×${concurrency}`);
    }
    const rssAfterCommands = await rssBytes(controller.pid);
    const heldAtEnd = await connected();
    const fleetStats = await fleet.stats();

    return {
      agents: options.agents,
      reportIntervalSec: options.reportIntervalSec,
      seedMs,
      connectMs,
      fleetConnectMs: Number(fleetConnected.ms),
      connectRetries: Number(fleetConnected.retries),
      heldAfterSteady,
      heldAtEnd,
      minHeldDuringSteady: minHeld,
      droppedByFleetCount: Number(fleetStats.dropped),
      rssSamplesPerWindow: [baselineSamples.length, rssSamples.length],
      rssBaselineMB: rssBaseline / 2 ** 20,
      rssIdleMB: rssIdle / 2 ** 20,
      rssPerAgentKB: (rssIdle - rssBaseline) / options.agents / 1024,
      rssAfterCommandsMB: rssAfterCommands / 2 ** 20,
      steadyWindowSec: Math.round(steadyElapsed),
      cpuPercentSteady,
      fleetCpuPercentSteady,
      unhealthyVms: expectedUnhealthy,
      query: { ...latencies(queryMs), path: QUERY_PATH, itemsPerPage },
      commands,
      loopDelayMs,
      cpuWaitPercent,
      gc,
      loadAverage,
    };
  } finally {
    client?.close();
    await fleet?.close();
    await Promise.all(children.reverse().map((child) => child.stop()));
    if (!options.profileDir) await rm(dataDir, { recursive: true, force: true });
  }
}

/** N VMs with agent credentials straight into the store (the testkit's seeding), then closed. */
export async function seedStore(
  dataDir: string,
  adminToken: string,
  count: number,
  databaseUrl?: string,
): Promise<SeededVm[]> {
  const settings = loadSettings({
    env: {},
    flags: {
      dataDir,
      listen: "127.0.0.1:0",
      adminToken,
      logLevel: "silent",
      ...(databaseUrl ? { databaseUrl } : {}),
    },
  });
  const app = await buildServer(settings, { provider: new SimProvider() });
  try {
    return await seedVms(app, { count, labels: (i) => ({ ring: String(i % 4) }) });
  } finally {
    await app.close();
  }
}

/**
 * `count` notebook restarts over the healthy agents, spread evenly, `concurrency` in flight.
 * Round trip = POST until the long poll answers `succeeded` over already open keep-alive
 * connections; the store's createdAt→finishedAt is the controller's own part of it.
 */
async function restartCommands(
  api: JsonClient,
  options: ControllerBenchOptions,
  concurrency: number,
  controllerPid: number,
): Promise<CommandRound> {
  const healthy = Array.from({ length: options.agents }, (_, i) => i).filter(
    (i) => options.unhealthyEvery <= 0 || i % options.unhealthyEvery !== 0,
  );
  const targets = Array.from(
    { length: options.commands },
    (_, k) => healthy[Math.floor((k * healthy.length) / options.commands) % healthy.length]!,
  );
  const width = String(options.agents - 1).length;
  const roundTrip: number[] = [];
  const post: number[] = [];
  const store: number[] = [];
  let succeeded = 0;
  let next = 0;
  await api.warm(concurrency);
  const cpuBefore = await cpuSeconds(controllerPid);
  const started = performance.now();
  const worker = async () => {
    while (next < targets.length) {
      const name = `sim-${String(targets[next++]).padStart(width, "0")}`;
      const t0 = performance.now();
      const sent = await api.expect<CommandView>(202, "POST", `/v1/vms/${name}/notebook/restart`);
      const t1 = performance.now();
      const done = await api.expect<CommandView>(200, "GET", `/v1/commands/${sent.id}?wait=10`);
      roundTrip.push(performance.now() - t0);
      post.push(t1 - t0);
      if (done.state === "succeeded") succeeded++;
      if (done.finishedAt) store.push(Date.parse(done.finishedAt) - Date.parse(done.createdAt));
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = (performance.now() - started) / 1000;
  return {
    count: targets.length,
    concurrency,
    succeeded,
    roundTripMs: latencies(roundTrip),
    postMs: latencies(post),
    storeCreatedToFinishedMs: latencies(store),
    throughputPerSec: targets.length / elapsed,
    cpuPercent: (((await cpuSeconds(controllerPid)) - cpuBefore) / elapsed) * 100,
  };
}

function latencies(values: number[]): Latencies {
  return {
    p50: quantile(values, 0.5),
    p99: quantile(values, 0.99),
    max: Math.max(...values),
    count: values.length,
  };
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(250);
  }
}

/** RSS once a second for `seconds` (and `each(n)` after the n-th sample). */
async function sampleEverySecond(
  pid: number,
  seconds: number,
  each: (n: number) => Promise<void> = async () => {},
): Promise<number[]> {
  const samples: number[] = [];
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    samples.push(await rssBytes(pid));
    await each(samples.length);
    await sleep(1000);
  }
  return samples;
}
