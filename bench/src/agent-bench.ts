/**
 * The agent as guests run it: the bundled artifact under the bootstrap's node flags and with the
 * bootstrap's arguments, linked over TLS (the certificate pinned) to a real controller in this
 * process that gave it its bootstrap token, reporting at the controller's default interval.
 * - RSS of the agent process alone (not Jupyter, not the controller), sampled from the moment
 *   it is spawned: the peak (the kernel's high-water mark, start-up included) and the median over
 *   the idle window; CPU over the idle window. The bench fails unless the controller saw the agent
 *   connected at every check of the window, no link closed, and its state reports arrived.
 * - Restart, per round: the agent's notebook restart (control socket, until the supervisor calls
 *   it ready: `/api` answers) over a bare `jupyter notebook` start until `/api` answers.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { dataPaths, probeApi, profileEnv, resolveRunAs, sendCommand } from "@nbfleet/agent";
import {
  AGENT_NODE_FLAGS,
  agentEnvironment,
  buildAgentArtifact,
  linuxAgentArgv,
  linuxGuestLayout,
} from "@nbfleet/scripts";
import type { VmView } from "@nbfleet/shared";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { stopChild } from "@nbfleet/testkit/processes";
import { waitFor } from "@nbfleet/testkit/wait";
import { cpuSeconds, peakRssBytes, sampleRss } from "./proc-usage.js";
import { median } from "./stats.js";
import { type TlsController, startTlsController } from "./tls-controller.js";
import { serving } from "./vm-serving.js";

export interface AgentBenchResult {
  runtime: string;
  link: string;
  reportIntervalSec: number;
  /** Spawn until the controller shows the agent connected, its notebook healthy, its first commands done. */
  startupMs: number;
  idleWindowSec: number;
  /** The most the agent process had resident from spawn to the end of the idle window (VmHWM or a sample). */
  peakRssMB: number;
  /** The largest of the 250 ms samples from spawn to the end of the window. */
  sampledPeakRssMB: number;
  /** Median of the samples taken during the idle window. */
  steadyRssMB: number;
  steadySamples: number;
  cpuPercent: number;
  /** State reports the controller received from the agent during the window. */
  stateReports: number;
  /** Times the controller was asked during the window; every answer said connected. */
  connectedChecks: number;
  /** Per round, in the order they ran. */
  agentRestartMs: number[];
  bareStartMs: number[];
  ratios: number[];
}

const VM = "bench-agent";
const SAMPLE_MS = 250;

export async function runAgentBench(options: {
  idleWindowSec: number;
  rounds: number;
}): Promise<AgentBenchResult> {
  const dir = makeDataDir("nbf-bench-agent-");
  let controller: TlsController | undefined;
  let agent: ChildProcess | undefined;
  try {
    controller = await startTlsController(dir);
    await controller.call("POST", "/v1/vms", { name: VM });
    const context = controller.provider.contexts.get(VM);
    if (!context) throw new Error(`the controller created ${VM} without handing over its bootstrap`);
    const dataDir = path.join(dir, "agent");
    const install = await installLikeBootstrap(
      path.join(dir, "install"),
      context.bootstrapToken,
      context.passwordHash,
    );
    const port = await freePort();
    const argv = linuxAgentArgv({
      mode: "sandbox",
      dataDir,
      installDir: install.installDir,
      controllerUrl: context.controllerUrl,
      artifactUrl: `${controller.url}/unused`,
      artifactSha256: install.sha256,
      bootstrapToken: context.bootstrapToken,
      notebookPort: port,
      bindIp: "127.0.0.1",
      controllerFingerprint: controller.fingerprint,
      passwordHash: context.passwordHash,
    });

    const spawned = performance.now();
    const child = spawn(process.execPath, [...AGENT_NODE_FLAGS, ...argv], {
      env: agentEnvironment(),
      stdio: ["ignore", "ignore", "pipe"],
    });
    agent = child;
    const rss = sampleRss(child.pid!, SAMPLE_MS);
    let stderr = "";
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-4000);
    });
    const alive = () => {
      if (child.exitCode !== null || child.signalCode !== null)
        throw new Error(`the agent exited (${child.exitCode ?? child.signalCode}): ${stderr}`);
    };
    await waitFor(
      `${VM} connected over TLS with a healthy notebook and its first commands done`,
      async () => {
        alive();
        return (await serving((path) => controller!.call("GET", path), VM)) || undefined;
      },
      180_000,
    );
    const startupMs = performance.now() - spawned;

    const window = await idleWindow(controller, child.pid!, options.idleWindowSec, alive);
    const samples = rss.stop();
    const sampledPeak = Math.max(...samples.map((s) => s.bytes));
    // The kernel's high-water mark also sees peaks between samples, but its counters are
    // synced lazily, so a sample can exceed it: the larger of the two is the maximum.
    const peakRss = Math.max(await peakRssBytes(child.pid!), sampledPeak);
    const steady = samples.filter((s) => s.at >= window.startedAt).map((s) => s.bytes);

    const paths = dataPaths(dataDir);
    const agentRestartMs: number[] = [];
    const bareStartMs: number[] = [];
    for (let round = 0; round < options.rounds; round++) {
      const t0 = performance.now();
      const outcome = await sendCommand(paths.controlSocket, "notebook.restart", {});
      if (!outcome.ok) throw new Error(`restart failed: ${outcome.error.message}`);
      agentRestartMs.push(performance.now() - t0);

      await sendCommand(paths.controlSocket, "notebook.stop", {});
      bareStartMs.push(await bareStart(paths, port));
      await sendCommand(paths.controlSocket, "notebook.start", {});
    }
    return {
      runtime: `bundled agent artifact, node ${AGENT_NODE_FLAGS.join(" ")}`,
      link: "wss to a controller on 127.0.0.1, its certificate pinned by fingerprint",
      reportIntervalSec: controller.reportIntervalSec,
      startupMs,
      idleWindowSec: Math.round(window.seconds),
      peakRssMB: peakRss / 2 ** 20,
      sampledPeakRssMB: sampledPeak / 2 ** 20,
      steadyRssMB: median(steady) / 2 ** 20,
      steadySamples: steady.length,
      cpuPercent: (window.cpuSeconds / window.seconds) * 100,
      stateReports: window.stateReports,
      connectedChecks: window.checks,
      agentRestartMs,
      bareStartMs,
      ratios: agentRestartMs.map((ms, i) => ms / bareStartMs[i]!),
    };
  } finally {
    if (agent) await stopChild(agent, "SIGINT", 30_000); // SIGINT stops its notebook too
    await controller?.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * What a Linux bootstrap leaves in its install directory: the artifact unpacked under
 * `current/`, and the bootstrap token and password hash in 0600 files.
 */
async function installLikeBootstrap(installDir: string, bootstrapToken: string, passwordHash: string) {
  const layout = linuxGuestLayout(installDir);
  const artifact = await buildAgentArtifact({ outDir: path.join(installDir, "out") });
  await mkdir(layout.current, { recursive: true });
  await promisify(execFile)("tar", ["-xzf", artifact.file, "-C", layout.current]);
  await writeFile(layout.tokenFile, `${bootstrapToken}\n`, { mode: 0o600 });
  await writeFile(layout.passwordHashFile, `${passwordHash}\n`, { mode: 0o600 });
  return { installDir, sha256: artifact.sha256 };
}

/**
 * The agent left alone for `seconds`: its CPU over the window, the controller asked every second
 * whether it is connected, and at the end how many state reports it received meanwhile. Throws
 * when the agent was not linked the whole time.
 */
async function idleWindow(controller: TlsController, pid: number, seconds: number, alive: () => void) {
  const closesBefore = await controller.metric("nbfleet_agent_connections_closed_total");
  const reportsBefore = await controller.metric("nbfleet_agent_messages_total", 'type="state"');
  const cpuBefore = await cpuSeconds(pid);
  const startedAt = performance.now();
  let checks = 0;
  while (performance.now() - startedAt < seconds * 1000) {
    await sleep(1000);
    alive();
    const view = await controller.call<VmView>("GET", `/v1/vms/${VM}`);
    if (view.agent.status !== "connected")
      throw new Error(`the agent was ${view.agent.status} during the idle window (check ${checks + 1})`);
    checks++;
  }
  const elapsed = (performance.now() - startedAt) / 1000;
  const cpuUsed = (await cpuSeconds(pid)) - cpuBefore;
  const closes = (await controller.metric("nbfleet_agent_connections_closed_total")) - closesBefore;
  const stateReports =
    (await controller.metric("nbfleet_agent_messages_total", 'type="state"')) - reportsBefore;
  const expected = Math.floor(elapsed / controller.reportIntervalSec);
  if (closes > 0) throw new Error(`the agent's link closed ${closes} time(s) during the idle window`);
  if (stateReports < expected)
    throw new Error(
      `the controller received ${stateReports} state report(s) in ${elapsed.toFixed(0)} s, expected at least ${expected} (every ${controller.reportIntervalSec} s)`,
    );
  return { startedAt, seconds: elapsed, cpuSeconds: cpuUsed, checks, stateReports };
}

/** `jupyter notebook` with the same profile, as the same user, until GET /api answers over TLS. */
async function bareStart(paths: ReturnType<typeof dataPaths>, port: number): Promise<number> {
  const install = JSON.parse(await readFile(paths.installRecord, "utf8")) as { launch: string[] };
  const owner = await resolveRunAs({ isRoot: process.getuid?.() === 0, runAs: "nbfleet", allowRoot: false });
  const t0 = performance.now();
  const child = spawn(install.launch[0]!, install.launch.slice(1), {
    cwd: path.join(paths.dataDir, "notebooks"),
    env: { PATH: process.env.PATH, HOME: owner?.home ?? process.env.HOME, ...profileEnv(paths) },
    stdio: "ignore",
    detached: true,
    ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
  });
  try {
    for (;;) {
      const endpoint = { host: "127.0.0.1", port, baseUrl: "/", certFile: paths.certFile };
      if ((await probeApi(endpoint, 2000)).ok) return performance.now() - t0;
      await sleep(25);
    }
  } finally {
    process.kill(-child.pid!, "SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
  }
}
