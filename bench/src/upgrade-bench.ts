/**
 * Agent upgrades, in two measurements:
 *
 * - **One real agent**: `nbfleet server` (its own process) with the local provider, one sandbox
 *   booted by the real bootstrap, Debian's Jupyter. The checkout is built as `rounds` newer
 *   versions (cached between runs), each published; each round upgrades the machine to the next
 *   one with an `agent.upgrade` operation and times POST until the VM's view shows the new
 *   version connected with a notebook that passes its checks (what the operation waits for too;
 *   the operation's own end is timed beside). The notebook server must stay the same process
 *   through every round (pid and the kernel's start time of that pid), else the bench fails.
 *
 * - **A simulated fleet**: N VMs seeded into a fresh store, a fresh `nbfleet server` and N
 *   simulated agents in a process of their own. One operation upgrades them all, `concurrency`
 *   at a time: each agent downloads the artifact (a real build of the checkout, published) from
 *   the controller for real, checks its size, sha256 and signature, answers, drops its link,
 *   and `restartMs` later dials again reporting the new version. Timed against the ideal
 *   N ÷ concurrency × restartMs. Checked, else the bench fails: every target succeeded, every
 *   agent downloaded the whole artifact exactly once, verified it and came back on the new
 *   version, and no more upgrades ran at once on the agents' clocks than asked.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import os from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { buildServer, loadSettings } from "@nbfleet/controller";
import type { VmView } from "@nbfleet/shared";
import { buildAgentVersion, publishArtifact } from "@nbfleet/testkit/agent-versions";
import {
  type ControllerProcess,
  api,
  startControllerProcess,
  stopControllerProcess,
} from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { type SeededVm, seedVms } from "@nbfleet/testkit/sim-fleet";
import type { AgentUpgrades } from "@nbfleet/testkit/sim-fleet-process";
import { SimFleetProcess } from "@nbfleet/testkit/sim-fleet-remote";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import { waitFor } from "@nbfleet/testkit/wait";
import { openEvents } from "./event-stream.js";
import { peakOverlap } from "./operation-records.js";
import { cpuSeconds, runQueueWaitSeconds } from "./proc-usage.js";
import { type Spread, spreadOf } from "./stats.js";

export interface UpgradeBenchOptions {
  /** Upgrades of the one real agent, each to a newer version (0 skips the real measurement). */
  rounds: number;
  /** Simulated agents (0 skips the fleet measurement). */
  agents: number;
  concurrency: number;
  /** The simulated agent's restart: from its answer until the new version dials. */
  restartMs: number;
  /** Fleet operations, each to a newer version. */
  fleetRounds: number;
}

export interface RealUpgradeRound {
  from: string;
  to: string;
  /** POST until the VM's view shows `to` connected and serving. */
  readyMs: number;
  /** POST until the operation ended (succeeded). */
  operationMs: number;
}

export interface UpgradeBenchResult {
  real: RealUpgrade | null;
  fleet: FleetUpgrade | null;
}

export interface RealUpgrade {
  rounds: RealUpgradeRound[];
  ready: Spread;
  operation: Spread;
  artifactBytes: number;
  /** The notebook server, the same process through every round. */
  notebookPid: number;
  /** Its uptime at the end, and the time since the first upgrade began (it must be larger). */
  notebookUptimeSec: number;
  upgradingSec: number;
  /** POST /v1/vms until the machine served. */
  createMs: number;
}

export interface FleetUpgrade {
  agents: number;
  concurrency: number;
  restartMs: number;
  idealMs: number;
  /** total / ideal over the rounds. */
  ratio: Spread;
  rounds: FleetRound[];
  artifactBytes: number;
  seedMs: number;
  connectMs: number;
}

/** One operation upgrading the whole simulated fleet to `version`. */
export interface FleetRound {
  version: string;
  /** POST until the `operation.finished` event arrived. */
  totalMs: number;
  ratio: number;
  /** The operation's createdAt → finishedAt on the controller's clock. */
  serverMs: number;
  /** Every agent's bytes of this version received (= agents × artifact bytes, checked). */
  bytesServed: number;
  /** Controller CPU during the operation per upgraded agent (its download, command and reconnect). */
  controllerCpuMsPerDownload: number;
  fleetCpuMsPerAgent: number;
  controllerRunQueueWaitMs: number;
  /** Most upgrades under way at once on the agents' clocks (command received → new version's hello sent). */
  peakConcurrency: number;
  /** Most targets running at once on the operation's own record (startedAt → finishedAt). */
  controllerPeakConcurrency: number;
  /** Per agent: command received → download checked (ms). */
  download: Spread;
  loadAverage1m: number;
}

export async function runUpgradeBench(options: UpgradeBenchOptions): Promise<UpgradeBenchResult> {
  const real = options.rounds > 0 ? await realAgentUpgrades(options.rounds) : null;
  const fleet = options.agents > 0 ? await fleetUpgrade(options) : null;
  return { real, fleet };
}

// ---- one real agent ----------------------------------------------------------------------------

const VM = "upgrade-1";

async function realAgentUpgrades(rounds: number): Promise<RealUpgrade> {
  const dataDir = makeDataDir("nbf-bench-upgrade-");
  const token = `nbf_${randomBytes(24).toString("base64url")}`;
  let controller: ControllerProcess | undefined;
  try {
    const versions = Array.from({ length: rounds }, (_, i) => `0.1.1-bench.${i + 1}`);
    const built = Promise.all(versions.map((v) => buildAgentVersion(v)));
    controller = await startControllerProcess(dataDir, await freePort(), token, {
      NBFLEET_LOG_LEVEL: "error",
    });
    const call = api(controller);
    const view = async () => {
      const { status, body } = await call<VmView>("GET", `/v1/vms/${VM}`);
      if (status !== 200) throw new Error(`GET /v1/vms/${VM}: ${status} ${JSON.stringify(body)}`);
      return body;
    };
    const createStarted = performance.now();
    const created = await call("POST", "/v1/vms", { name: VM });
    if (created.status !== 201)
      throw new Error(`POST /v1/vms: ${created.status} ${JSON.stringify(created.body)}`);
    await waitFor(`${VM} serving`, async () => serving(await view()), 300_000);
    const createMs = performance.now() - createStarted;
    const artifacts = await built;
    for (const artifact of artifacts) await publishArtifact(controller, artifact.file);

    const first = await view();
    const notebookPid = first.notebook.pid!;
    const notebook = processIdentity(notebookPid);
    const upgradingFrom = Date.now();
    const measured: RealUpgradeRound[] = [];
    let from = versionOf(first);
    for (const to of versions) {
      // Each round starts settled: the previous agent confirmed and nothing is in flight.
      await sleep(1000);
      const t0 = performance.now();
      const posted = await call<{ operation: { id: string } }>("POST", "/v1/operations", {
        action: "agent.upgrade",
        selector: { names: [VM] },
        params: { version: to },
        maxConcurrency: 1,
      });
      if (posted.status !== 201)
        throw new Error(`POST /v1/operations: ${posted.status} ${JSON.stringify(posted.body)}`);
      const id = posted.body.operation.id;
      let readyMs = 0;
      for (;;) {
        const v = await view();
        if (versionOf(v) === to && serving(v)) {
          readyMs = performance.now() - t0;
          break;
        }
        if (performance.now() - t0 > 120_000)
          throw new Error(`${VM} not serving on ${to} after 120 s: ${JSON.stringify(v)}`);
        await sleep(20);
      }
      let operationMs = 0;
      for (;;) {
        const op = (
          await call<{ state: string; reason: string | null }>("GET", `/v1/operations/${id}?targetsLimit=1`)
        ).body;
        if (op.state !== "running" && op.state !== "pending") {
          if (op.state !== "succeeded")
            throw new Error(`upgrading ${VM} to ${to}: the operation ${op.state} (${op.reason})`);
          operationMs = performance.now() - t0;
          break;
        }
        if (performance.now() - t0 > 180_000)
          throw new Error(`the upgrade to ${to} did not end within 180 s`);
        await sleep(20);
      }
      const after = await view();
      if (after.notebook.pid === null || processIdentity(after.notebook.pid) !== notebook)
        throw new Error(
          `upgrading to ${to} replaced the notebook server (${notebook} → ${after.notebook.pid})`,
        );
      measured.push({ from, to, readyMs, operationMs });
      from = to;
    }
    const last = await view();
    const startedAt = last.notebook.startedAt ? Date.parse(last.notebook.startedAt) : Number.NaN;
    const result = {
      rounds: measured,
      ready: spreadOf(measured.map((r) => r.readyMs)),
      operation: spreadOf(measured.map((r) => r.operationMs)),
      artifactBytes: artifacts[0]!.bytes,
      notebookPid,
      notebookUptimeSec: (Date.now() - startedAt) / 1000,
      upgradingSec: (Date.now() - upgradingFrom) / 1000,
      createMs,
    };
    if (!(result.notebookUptimeSec > result.upgradingSec))
      throw new Error(
        `the notebook's uptime (${result.notebookUptimeSec} s) is shorter than the upgrades took (${result.upgradingSec} s)`,
      );
    await call("DELETE", `/v1/vms/${VM}`);
    return result;
  } finally {
    if (controller) await stopControllerProcess(controller);
    await rm(dataDir, { recursive: true, force: true });
  }
}

const versionOf = (v: VmView) => (v.agent as { version?: string | null }).version ?? "?";

/** Connected, the notebook running, no check failing (a busy CPU's warning is not the agent's doing). */
const serving = (v: VmView) =>
  v.agent.status === "connected" &&
  v.notebook.state === "running" &&
  v.health.checks.length > 0 &&
  v.health.checks.every((c) => c.status !== "fail");

function processIdentity(pid: number): string {
  return `${pid}@${startTimeOf(pid)}`;
}

function startTimeOf(pid: number): string {
  // Field 22 of /proc/<pid>/stat, after the parenthesised command name.
  const stat = readFileSyncSafe(`/proc/${pid}/stat`);
  return stat ? (stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? "?") : "gone";
}

function readFileSyncSafe(file: string): string | null {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return null;
  }
}

// ---- a simulated fleet -------------------------------------------------------------------------

const fleetVersion = (round: number) => `0.1.1-bench.fleet.${round}`;

async function fleetUpgrade(options: UpgradeBenchOptions): Promise<FleetUpgrade> {
  const dataDir = makeDataDir("nbf-bench-upgrade-fleet-");
  const token = `nbf_${randomBytes(24).toString("base64url")}`;
  let controller: ControllerProcess | undefined;
  let fleet: SimFleetProcess | undefined;
  try {
    const seedStarted = performance.now();
    const vms = await seed(dataDir, token, options.agents);
    const seedMs = performance.now() - seedStarted;
    const versions = Array.from({ length: options.fleetRounds }, (_, i) => fleetVersion(i + 1));
    const artifacts = await Promise.all(versions.map((v) => buildAgentVersion(v)));
    controller = await startControllerProcess(dataDir, await freePort(), token, {
      NBFLEET_REPORT_INTERVAL_SEC: "30",
      NBFLEET_LOG_LEVEL: "error",
    });
    const call = api(controller);
    const published = [];
    for (const artifact of artifacts) published.push(await publishArtifact(controller, artifact.file));
    const catalog = (await call<{ releasePublicKey: string }>("GET", "/v1/agent/artifacts")).body;
    if (!catalog.releasePublicKey?.includes("PUBLIC KEY"))
      throw new Error(
        `GET /v1/agent/artifacts gave no release public key: ${JSON.stringify(catalog).slice(0, 300)}`,
      );

    fleet = new SimFleetProcess();
    const { ms: connectMs } = await fleet.start({
      url: controller.url,
      vms,
      record: false,
      upgrade: { restartMs: options.restartMs, releasePublicKeyPem: catalog.releasePublicKey },
    });
    const rounds: FleetRound[] = [];
    for (const [i, version] of versions.entries()) {
      await waitFor(
        "every agent connected",
        async () =>
          (await call<{ agentsConnected: number }>("GET", "/healthz")).body.agentsConnected >= options.agents,
        120_000,
      );
      // Each operation starts on a settled fleet, as it would when an operator acts.
      await sleep(2000);
      rounds.push(await fleetRound(controller, fleet, options, version, published[i]!.bytes));
    }
    const idealMs = (options.agents / options.concurrency) * options.restartMs;
    return {
      agents: options.agents,
      concurrency: options.concurrency,
      restartMs: options.restartMs,
      idealMs,
      ratio: spreadOf(rounds.map((r) => r.ratio)),
      rounds,
      artifactBytes: published[0]!.bytes,
      seedMs,
      connectMs,
    };
  } finally {
    await fleet?.close();
    if (controller) await stopControllerProcess(controller);
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function fleetRound(
  controller: ControllerProcess,
  fleet: SimFleetProcess,
  options: UpgradeBenchOptions,
  version: string,
  bytes: number,
): Promise<FleetRound> {
  const call = api(controller);
  const controllerPid = controller.process.pid!;
  const before = await usage(controllerPid, fleet.pid);
  const finished = await openEvents(controller, "operation.finished");
  const started = performance.now();
  const created = await call<{ operation: { id: string } }>("POST", "/v1/operations", {
    action: "agent.upgrade",
    selector: { all: true },
    params: { version },
    maxConcurrency: options.concurrency,
  });
  if (created.status !== 201)
    throw new Error(`POST /v1/operations: ${created.status} ${JSON.stringify(created.body)}`);
  const id = created.body.operation.id;
  await finished.until((data) => data.operationId === id);
  const totalMs = performance.now() - started;
  finished.close();
  const after = await usage(controllerPid, fleet.pid);
  const op = (
    await call<{
      state: string;
      createdAt: string;
      finishedAt: string | null;
      counts: Record<string, number>;
    }>("GET", `/v1/operations/${id}?targetsLimit=0`)
  ).body;
  const { succeeded = 0, ...others } = op.counts;
  const notSucceeded = Object.entries(others).filter(([, n]) => n > 0);
  if (op.state !== "succeeded" || succeeded !== options.agents || notSucceeded.length > 0)
    throw new Error(
      `upgrade bench, fleet, ${version}: the operation ${op.state} with ${succeeded} of ${options.agents} targets succeeded${notSucceeded.map(([s, n]) => `, ${n} ${s}`).join("")}`,
    );
  // The controller counts a target done on the new agent's hello; its welcome may still be on
  // the way to the agent, which notes its reconnection on the welcome.
  let records = await fleet.upgrades();
  for (
    let tries = 0;
    tries < 50 && !records.every((r) => r.runs.some((x) => x.to === version && x.reconnectedAt));
    tries++
  ) {
    await sleep(200);
    records = await fleet.upgrades();
  }
  const checked = checkFleet(records, options, version, bytes);
  const controllerPeak = peakOverlap(
    (await allTargets(call, id)).map((t) => [Date.parse(t.startedAt!), Date.parse(t.finishedAt!)]),
  );
  const idealMs = (options.agents / options.concurrency) * options.restartMs;
  return {
    version,
    totalMs,
    ratio: totalMs / idealMs,
    serverMs: Date.parse(op.finishedAt!) - Date.parse(op.createdAt),
    bytesServed: checked.bytesServed,
    controllerCpuMsPerDownload: ((after.controllerCpu - before.controllerCpu) * 1000) / options.agents,
    fleetCpuMsPerAgent: ((after.fleetCpu - before.fleetCpu) * 1000) / options.agents,
    controllerRunQueueWaitMs: (after.controllerWait - before.controllerWait) * 1000,
    peakConcurrency: checked.peak,
    controllerPeakConcurrency: controllerPeak,
    download: spreadOf(checked.downloadMs),
    loadAverage1m: os.loadavg()[0]!,
  };
}

/** The agents' own records agree with a clean rollout to `version`; returns what they add up to. */
function checkFleet(records: AgentUpgrades[], options: UpgradeBenchOptions, version: string, bytes: number) {
  const where = `upgrade bench, fleet, ${version}`;
  if (records.length !== options.agents)
    throw new Error(`${where}: ${records.length} agents reported, expected ${options.agents}`);
  const intervals: Array<[number, number]> = [];
  const downloadMs: number[] = [];
  let bytesServed = 0;
  for (const agent of records) {
    const runs = agent.runs.filter((r) => r.to === version);
    if (runs.length !== 1)
      throw new Error(
        `${where}: ${agent.vm} ran ${runs.length} upgrades to it (${JSON.stringify(runs)}), expected 1`,
      );
    const run = runs[0]!;
    if (run.refused) throw new Error(`${where}: ${agent.vm} refused the artifact: ${run.refused}`);
    if (run.bytes !== bytes)
      throw new Error(`${where}: ${agent.vm} received ${run.bytes} bytes, the artifact has ${bytes}`);
    if (agent.version !== version || run.reconnectedAt === null)
      throw new Error(`${where}: ${agent.vm} reports ${agent.version}, reconnected at ${run.reconnectedAt}`);
    bytesServed += run.bytes;
    downloadMs.push(run.downloadedAt! - run.receivedAt);
    // Command received → the new version's hello sent: inside the controller's slot for the
    // target whatever the agents' event loop delays (its welcome may be read much later).
    intervals.push([run.receivedAt, run.helloAt ?? run.reconnectedAt]);
  }
  const peak = peakOverlap(intervals);
  if (peak > options.concurrency)
    throw new Error(
      `${where}: ${peak} upgrades ran at once on the agents, more than the ${options.concurrency} asked`,
    );
  return { bytesServed, peak, downloadMs };
}

interface TargetTimes {
  startedAt: string | null;
  finishedAt: string | null;
}

async function allTargets(call: ReturnType<typeof api>, id: string): Promise<TargetTimes[]> {
  const targets: TargetTimes[] = [];
  let cursor: string | null = null;
  do {
    const page: { targets: { items: TargetTimes[]; nextCursor: string | null } } = (
      await call<{ targets: { items: TargetTimes[]; nextCursor: string | null } }>(
        "GET",
        `/v1/operations/${id}?targetsLimit=1000${cursor ? `&targetsCursor=${encodeURIComponent(cursor)}` : ""}`,
      )
    ).body;
    targets.push(...page.targets.items);
    cursor = page.targets.nextCursor;
  } while (cursor);
  return targets;
}

async function seed(dataDir: string, adminToken: string, count: number): Promise<SeededVm[]> {
  const settings = loadSettings({
    env: {},
    flags: { dataDir, listen: "127.0.0.1:0", adminToken, logLevel: "silent" },
  });
  const app = await buildServer(settings, { provider: new SimProvider() });
  try {
    return await seedVms(app, { count, prefix: "upg" });
  } finally {
    await app.close();
  }
}

async function usage(controllerPid: number, fleetPid: number) {
  return {
    controllerCpu: await cpuSeconds(controllerPid),
    fleetCpu: await cpuSeconds(fleetPid),
    controllerWait: await runQueueWaitSeconds(controllerPid),
  };
}
