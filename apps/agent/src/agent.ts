/**
 * One agent for one data directory: brings the notebook server up (install → user → password →
 * certificate → profile → supervisor), keeps its health current, and executes commands from the
 * local control socket and, later, the controller.
 *
 *   install ─┐
 *   run-as ──┼─▶ profile (config + token) ─▶ supervisor.adoptOrStart ─▶ health loop
 *   password ┤
 *   cert ────┘
 */
import { chmod, mkdir, readFile } from "node:fs/promises";
import os from "node:os";
import {
  type AgentEvent,
  type AgentState,
  type CertificateInfo,
  type CommandMessage,
  type CommandParamsOf,
  type HealthCheck,
  type HealthReport,
  type NotebookStatus,
  foldHealth,
} from "@nbfleet/shared";
import { AcmeRenewer } from "./acme/renewer.js";
import { withAcmeFailure } from "./acme/tls-check-note.js";
import { expiredOnArrival } from "./command-expiry.js";
import { loadSettings, saveSettings } from "./config/load.js";
import { isWildcard, notebookUrl } from "./config/notebook-url.js";
import { type DataPaths, dataPaths } from "./config/paths.js";
import type { AgentSettings } from "./config/settings.js";
import type { AgentCore, CommandOutcome } from "./core.js";
import { AgentError, errorCode } from "./errors.js";
import { EventLog } from "./events/event-log.js";
import { deepCheckDue } from "./health/deep-schedule.js";
import { probeApi } from "./health/http.js";
import { runChecks } from "./health/run-checks.js";
import { clearStaleMatplotlibLocks } from "./health/stale-locks.js";
import type { CheckTarget } from "./health/target.js";
import { type InstallRecord, ensureInstalled } from "./install/run.js";
import { type AgentLogger, createAgentLogger } from "./log/logger.js";
import { hashForServer, validateHash } from "./password/hash.js";
import { onProcessTrouble } from "./process-policy.js";
import { type RunAsUser, assertTraversable, resolveRunAs } from "./profile/user.js";
import { ensureAgentToken, secureProfileDirs, writeProfile } from "./profile/write.js";
import type { TerminalTarget } from "./pty/shell.js";
import { tailLines } from "./supervisor/log-file.js";
import { redactLine } from "./supervisor/log-redact.js";
import { type LaunchSpec, Supervisor } from "./supervisor/supervisor.js";
import { inSystemdScope } from "./supervisor/systemd-scope.js";
import { ensureCertificate, rotateCertificate } from "./tls/ensure.js";
import { reportCertificateFile } from "./tls/report.js";
import { fetchServedCertificate } from "./tls/served.js";
import type { Upgrader } from "./upgrade/upgrader.js";
import { writeFileAtomic } from "./util/atomic-write.js";
import { LatestFile } from "./util/latest-file.js";
import { WriteFailures } from "./util/write-failures.js";

/** Where `controller.trust` stores the controller certificates trusted in place of the pin (link/pinned-key.ts). */
export interface ControllerTrust {
  trust(pins: CommandParamsOf<"controller.trust">["pins"]): Promise<void>;
}

export interface AgentOptions {
  dataDir: string;
  overrides?: Partial<AgentSettings>;
  /**
   * The initial password as a ready hash (`argon2:` / `sha1:`), format-checked. A launcher
   * repeats it on every start, so it is stored only when the data directory has no password
   * yet: after the first start only password commands change it.
   */
  passwordHash?: string;
  /** Plaintext from stdin: hashed as soon as the Jupyter version is known, then dropped. */
  password?: string;
  isRoot?: boolean;
  /** `systemd`: the notebook server starts in a scope of its own (see supervisor/systemd-scope.ts). */
  notebookScope?: "systemd";
}

type Listener = Parameters<AgentCore["subscribe"]>[0];

const CERT_CHECK_EVERY_MS = 60_000;
/** How soon after a new notebook server is running its first deep check runs. */
export const DEEP_CHECK_AFTER_START_MS = 3000;
const REMEMBERED_COMMANDS = 1000;

export class Agent implements AgentCore {
  private supervisor: Supervisor | null = null;
  private install: InstallRecord | null = null;
  private owner: RunAsUser | null = null;
  private token = "";
  private checks: HealthCheck[] = [];
  /** The last deep kernel check and the server it ran against (see serverTag). */
  private kernelCheck: { server: string; check: HealthCheck } | undefined;
  /** The deep round under way, cancelled when its server goes away. */
  private deepRound: { server: string | null; abort: AbortController } | null = null;
  /** A deep check due soon after a new server came up. */
  private deepSoon: { server: string; timer: NodeJS.Timeout } | null = null;
  private health: HealthReport;
  private readonly listeners = new Set<Listener>();
  private readonly outcomes = new Map<string, Promise<CommandOutcome>>();
  private timers: NodeJS.Timeout[] = [];
  private lastCertCheck = 0;
  private lastDeepCheck = 0;
  private refreshChain: Promise<void> = Promise.resolve();
  private pendingRefresh: Promise<void> | null = null;
  private lastSignature = "";
  private certificate: CertificateInfo | null = null;
  private pendingPassword: string | null = null;
  private upgrader: Upgrader | null = null;
  private controllerTrust: ControllerTrust | null = null;
  private notebookScope: "systemd" | null = null;
  /** Issues and renews the notebook's certificate over ACME (`certificate.mode: "acme"`). */
  private acme: AcmeRenewer | null = null;
  readonly events: EventLog;
  readonly log: AgentLogger;
  private readonly closeLog: () => void;
  /** Every write of the agent's own files reports here; a full disk fails writes, not the agent. */
  private readonly writes: WriteFailures;
  private readonly restartsFile: LatestFile;
  private readonly stopTroubleLog: () => void;

  private constructor(
    readonly paths: DataPaths,
    readonly settings: AgentSettings,
    private readonly isRoot: boolean,
  ) {
    this.writes = new WriteFailures((report) =>
      this.recordEvent(report.level, report.kind, report.message, report.data),
    );
    this.events = new EventLog(paths.eventsFile, this.writes);
    this.restartsFile = new LatestFile(paths.restartsFile, "restart count", this.writes);
    this.health = foldHealth([], "stopped");
    const logger = createAgentLogger(paths.agentLog, settings.logMaxBytes, this.writes);
    this.log = logger.log;
    this.closeLog = logger.close;
    this.stopTroubleLog = onProcessTrouble((trouble) =>
      this.log.error(
        { kind: trouble.kind, err: trouble.error, suppressed: trouble.suppressed },
        "an error nobody caught",
      ),
    );
  }

  static async open(options: AgentOptions): Promise<Agent> {
    const paths = dataPaths(options.dataDir);
    const settings = await loadSettings(paths, options.overrides);
    await prepareDirectories(paths);
    await saveSettings(paths, settings);
    const agent = new Agent(paths, settings, options.isRoot ?? process.getuid?.() === 0);
    if (options.passwordHash) await agent.applyInitialPasswordHash(options.passwordHash);
    agent.pendingPassword = options.password ?? null;
    agent.notebookScope = options.notebookScope ?? null;
    return agent;
  }

  /** Everything `nbfleet-agent up` does before it sits and supervises. */
  async up(progress: (message: string) => void = () => {}): Promise<"adopted" | "started"> {
    progress("checking the Jupyter installation");
    const installed = await ensureInstalled({ paths: this.paths, isRoot: this.isRoot, onProgress: progress });
    if (installed.action === "dry-run") throw new Error("unreachable: up never asks for a dry run");
    this.install = installed.record;
    this.owner = await resolveRunAs({
      isRoot: this.isRoot,
      runAs: this.settings.runAs,
      allowRoot: this.settings.allowRoot,
    });
    // Before the certificate or the token is looked at: both sit in the config dir.
    await secureProfileDirs(this.paths, this.owner);
    if (this.pendingPassword !== null) {
      await this.storePasswordHash(await hashForServer(this.pendingPassword, this.install));
      this.pendingPassword = null;
    }
    await this.readPasswordHash(); // fails early and clearly when none was ever given
    progress("checking the certificate");
    await this.refreshCertificate();
    this.acme = this.createAcmeRenewer();
    this.token = await ensureAgentToken(this.paths, this.owner);
    await this.writeProfile();
    if (this.owner) {
      for (const dir of [this.paths.configDir, this.notebookDir(), this.paths.logsDir])
        await assertTraversable(dir, this.owner);
    }
    this.supervisor = await this.createSupervisor();
    progress("starting the notebook server");
    const how = await this.supervisor.adoptOrStart();
    await this.refresh({ deep: false });
    this.startLoops();
    return how;
  }

  state(): AgentState {
    return { notebook: this.notebookStatus(), health: this.health };
  }

  /** Lets `agent.upgrade` run (an agent started with an install dir and a release key). */
  useUpgrader(upgrader: Upgrader): void {
    this.upgrader = upgrader;
  }

  /** Lets `controller.trust` run (an agent pinned to its controller's certificate). */
  useControllerTrust(trust: ControllerTrust): void {
    this.controllerTrust = trust;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  execute(command: CommandMessage, progress: (message: string) => void): Promise<CommandOutcome> {
    const known = this.outcomes.get(command.id);
    if (known) return known;
    const outcome = this.run(command, progress).then(
      (data): CommandOutcome => ({ ok: true, ...(data === undefined ? {} : { data }) }),
      (error): CommandOutcome => ({
        ok: false,
        error: { code: errorCode(error), message: error instanceof Error ? error.message : String(error) },
      }),
    );
    this.outcomes.set(command.id, outcome);
    if (this.outcomes.size > REMEMBERED_COMMANDS) this.outcomes.delete(this.outcomes.keys().next().value!);
    return outcome;
  }

  /** Stops the loops; the notebook server keeps running for the next agent to re-adopt. */
  close(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.stopDeepChecks();
    this.supervisor?.detach();
    this.closeFiles();
  }

  /** Stops the loops and the notebook server. */
  async shutdown(): Promise<void> {
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    this.stopDeepChecks();
    await this.supervisor?.stop();
    this.supervisor?.detach();
    this.closeFiles();
  }

  private stopDeepChecks(): void {
    this.cancelDeepSoon();
    this.deepRound?.abort.abort(new Error("the agent is stopping"));
  }

  private closeFiles(): void {
    this.stopTroubleLog();
    this.events.close();
    this.restartsFile.close();
    this.closeLog();
  }

  private async run(command: CommandMessage, progress: (message: string) => void): Promise<unknown> {
    this.log.info({ commandId: command.id, command: command.name }, "command received");
    if (expiredOnArrival(command)) {
      throw new AgentError("NBF_COMMAND_EXPIRED", `command ${command.id} expired before it could start`);
    }
    const supervisor = this.requireSupervisor();
    switch (command.name) {
      case "notebook.start":
        await supervisor.start();
        break;
      case "notebook.stop":
        await supervisor.stop();
        break;
      case "notebook.restart":
        // A pair installed beside the agent (`certificate install|acme`) is read, and owned, anew.
        await this.refreshCertificate();
        progress("restarting the notebook server");
        await supervisor.restart();
        break;
      case "password.set":
        // The controller queues the hash it also gave the bootstrap: the same hash again is a no-op.
        if ((await this.readPasswordHash().catch(() => null)) === command.params.hash) break;
        await this.storePasswordHash(command.params.hash);
        await this.writeProfile();
        progress("password stored; restarting the notebook server to load it");
        await this.restartIfRunning();
        break;
      case "certificate.rotate": {
        if (this.acme) {
          // ACME mode: a rotation is a renewal from the CA (onIssued restarts a server not serving it).
          progress("asking the ACME CA for a new certificate");
          await this.acme.renewNow(this.certificate);
          break;
        }
        const result = await rotateCertificate(this.paths, {
          hostnames: [...this.settings.hostnames, ...(command.params.hostnames ?? [])],
          ips: [...this.settings.ips, ...(command.params.ips ?? [])],
          ...(this.owner ? { owner: this.owner } : {}),
        });
        await this.rememberCertificate(result);
        this.recordEvent("info", "certificate.rotated", `new certificate ${result.fingerprintSha256}`);
        progress("certificate rotated; restarting the notebook server to serve it");
        await this.restartIfRunning();
        break;
      }
      case "logs.tail": {
        const file = command.params.source === "agent" ? this.paths.agentLog : this.paths.notebookLog;
        return { lines: (await tailLines(file, command.params.lines)).map((line) => this.redactLog(line)) };
      }
      case "diagnose":
        await this.refresh({ deep: true });
        return this.state();
      case "agent.upgrade":
        if (!this.upgrader) {
          throw new AgentError(
            "NBF_UPGRADE_UNAVAILABLE",
            "this agent was started without --install-dir and --release-key-file: it cannot upgrade itself",
          );
        }
        return this.upgrader.upgrade(command.id, command.params, progress);
      case "controller.trust": {
        if (!this.controllerTrust) {
          throw new AgentError(
            "NBF_TRUST_REFUSED",
            "this agent is not pinned to its controller's certificate (it trusts a CA, or has no controller): there is no pin to replace",
          );
        }
        const { pins } = command.params;
        await this.controllerTrust.trust(pins);
        const names = pins.map((pin) => pin.certificateSha256).join(", ");
        this.recordEvent(
          "info",
          "controller.trusted",
          `controller certificates trusted from now on: ${names}`,
        );
        return { trusted: pins.length };
      }
    }
    await this.refresh({ deep: false });
    return this.state();
  }

  private async restartIfRunning(): Promise<void> {
    const supervisor = this.requireSupervisor();
    const state = supervisor.snapshot().state;
    if (state === "stopped") return;
    await supervisor.restart();
  }

  /**
   * Whether the running server already serves this certificate: a server that loads its pair
   * per connection (Tornado with file options), or one started after the pair was written, needs
   * no restart for it.
   */
  private async serving(fingerprintSha256: string): Promise<boolean> {
    // A server still starting is asked once it runs (it may have read the new pair already).
    for (let waited = 0; this.supervisor?.snapshot().state === "starting" && waited < 30_000; waited += 100)
      await new Promise((resolve) => setTimeout(resolve, 100));
    if (this.supervisor?.snapshot().state !== "running") return false;
    const target = this.checkTarget();
    try {
      const served = await fetchServedCertificate(target.host, target.port, undefined, { timeoutMs: 2000 });
      return served.fingerprintSha256 === fingerprintSha256;
    } catch {
      return false;
    }
  }

  private requireSupervisor(): Supervisor {
    if (!this.supervisor)
      throw new AgentError("NBF_AGENT_NOT_RUNNING", "the agent has not brought the notebook up yet");
    return this.supervisor;
  }

  private async createSupervisor(): Promise<Supervisor> {
    const { settings, paths } = this;
    return new Supervisor({
      ip: settings.ip,
      port: settings.port,
      pidFile: paths.pidFile,
      logFile: paths.notebookLog,
      logMaxBytes: settings.logMaxBytes,
      restart: settings.restart,
      stopGraceMs: settings.stopGraceMs,
      restarts: await this.readRestarts(),
      probe: async () => (await probeApi(this.checkTarget(), 2000)).ok,
      launchSpec: async () =>
        this.scoped({
          argv: this.install!.launch,
          cwd: this.notebookDir(),
          owner: this.owner,
          env: {
            PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
            LANG: process.env.LANG ?? "C.UTF-8",
            HOME: this.owner?.home ?? os.homedir(),
            USER: this.owner?.user ?? os.userInfo().username,
            JUPYTER_CONFIG_DIR: paths.configDir,
            JUPYTER_RUNTIME_DIR: paths.runtimeDir,
            JUPYTER_DATA_DIR: paths.jupyterDataDir,
            PYTHONUNBUFFERED: "1",
          },
        }),
      onEvent: (event) => this.recordEvent(event.level, event.kind, event.message, event.data),
      onChange: () => {
        this.onServerChange();
        this.scheduleRefresh();
      },
      onRestartsChanged: (restarts) => void this.saveRestarts(restarts),
      writes: this.writes,
    });
  }

  private scoped(spec: LaunchSpec): LaunchSpec {
    return this.notebookScope === "systemd" ? inSystemdScope(spec, this.settings.port) : spec;
  }

  private startLoops(): void {
    const every = (ms: number, work: () => Promise<void>) => {
      const timer = setInterval(() => void work().catch(() => undefined), ms);
      timer.unref();
      this.timers.push(timer);
    };
    every(this.settings.reportIntervalSec * 1000, async () => {
      await this.refresh({
        deep: deepCheckDue(
          Date.now(),
          this.lastDeepCheck,
          this.settings.deepCheckIntervalSec,
          this.kernelCheckOf(this.serverTag()),
        ),
      });
    });
  }

  private scheduleRefresh(): void {
    setTimeout(() => void this.refresh({ deep: false }).catch(() => undefined), 50).unref();
    this.notify();
  }

  /**
   * Re-runs the checks. Runs never overlap; a request joins a run that has not started yet (so
   * it sees the state as of the request) instead of one already under way.
   */
  refresh(options: { deep: boolean }): Promise<void> {
    if (this.pendingRefresh && !options.deep) return this.pendingRefresh;
    const run: Promise<void> = this.refreshChain.then(() => {
      if (this.pendingRefresh === run) this.pendingRefresh = null;
      return this.checkNow(options.deep);
    });
    this.pendingRefresh = run;
    this.refreshChain = run.catch(() => undefined);
    return run;
  }

  /**
   * One round of checks against the server running now. Results are the server's own: a round
   * during which the server changed (a restart, a crash) is dropped and a new one scheduled, and
   * a kernel check is carried into later rounds only while its server runs.
   */
  private async checkNow(deepAsked: boolean): Promise<void> {
    if (Date.now() - this.lastCertCheck >= CERT_CHECK_EVERY_MS) await this.refreshCertificate(true);
    // In the background: an issuance takes seconds, and its outcome arrives through its callbacks.
    void this.acme
      ?.tick(this.certificate)
      ?.catch((error: unknown) =>
        this.recordEvent("error", "certificate.acme_failed", `ACME renewal: ${String(error)}`),
      );
    const server = this.serverTag();
    // Only a server that runs gets a kernel check: one still starting (its pid known, its port
    // not yet open) fails it with ECONNREFUSED, and that failure would stay with the server
    // until its next deep round. A server that starts gets its own soon after (onServerChange).
    const deep = deepAsked && this.supervisor?.snapshot().state === "running";
    const round = deep ? { server, abort: new AbortController() } : null;
    if (round) this.deepRound = round;
    if (deep) await this.clearStaleLocks();
    const previous = this.kernelCheckOf(server);
    let checks: HealthCheck[];
    try {
      checks = await runChecks(this.checkTarget(), {
        deep,
        ...(previous ? { previousKernelCheck: previous } : {}),
        ...(round ? { signal: round.abort.signal } : {}),
      });
    } finally {
      if (round && this.deepRound === round) this.deepRound = null;
    }
    if (round?.abort.signal.aborted || this.serverTag() !== server) {
      this.scheduleRefresh();
      return;
    }
    this.checks = withAcmeFailure(checks, this.acme?.lastFailure() ?? null);
    if (deep) {
      this.lastDeepCheck = Date.now();
      const kernel = checks.find((c) => c.name === "kernel");
      this.kernelCheck = kernel && server !== null ? { server, check: kernel } : undefined;
    }
    this.health = foldHealth(this.checks, this.supervisor?.snapshot().state ?? "stopped");
    this.notify();
  }

  /** A lock a killed kernel left would fail every plot of the notebook's user, the deep check's too. */
  private async clearStaleLocks(): Promise<void> {
    const home = this.owner?.home ?? os.homedir();
    const removed = await clearStaleMatplotlibLocks(home).catch(() => []);
    for (const file of removed) {
      this.recordEvent(
        "warn",
        "notebook.stale_lock_removed",
        `removed ${file}, a matplotlib lock a killed kernel left`,
      );
    }
  }

  /** The last kernel check, if it ran against this server. */
  private kernelCheckOf(server: string | null): HealthCheck | undefined {
    return this.kernelCheck?.server === server ? this.kernelCheck.check : undefined;
  }

  /** The notebook server check results belong to: its pid and start, null when none runs. */
  private serverTag(): string | null {
    const snapshot = this.supervisor?.snapshot();
    return snapshot?.pid ? `${snapshot.pid}@${snapshot.startedAt}` : null;
  }

  /**
   * The supervisor moved: a deep check still running against a server that is stopping or gone
   * is cancelled (its kernel dies with that server, and its failure would say nothing about the
   * next one), and a server newly running gets its own deep check within seconds.
   */
  private onServerChange(): void {
    const snapshot = this.supervisor?.snapshot();
    const server = this.serverTag();
    const running = snapshot?.state === "running";
    const round = this.deepRound;
    if (round && !round.abort.signal.aborted && (round.server !== server || !running)) {
      const why = running
        ? `the notebook server changed (now pid ${snapshot?.pid})`
        : `the notebook server is ${snapshot?.state ?? "gone"}`;
      round.abort.abort(new Error(why));
      this.recordEvent("info", "health.deep_check_cancelled", `deep kernel check cancelled: ${why}`, {
        server: round.server,
      });
    }
    if (this.deepSoon && this.deepSoon.server !== server) this.cancelDeepSoon();
    if (
      !running ||
      server === null ||
      this.deepSoon !== null ||
      this.settings.deepCheckIntervalSec <= 0 ||
      this.kernelCheck?.server === server ||
      this.deepRound?.server === server
    )
      return;
    const timer = setTimeout(() => {
      this.deepSoon = null;
      if (this.serverTag() === server) void this.refresh({ deep: true }).catch(() => undefined);
    }, DEEP_CHECK_AFTER_START_MS);
    timer.unref();
    this.deepSoon = { server, timer };
  }

  private cancelDeepSoon(): void {
    if (this.deepSoon) clearTimeout(this.deepSoon.timer);
    this.deepSoon = null;
  }

  private notify(): void {
    const state = this.state();
    const signature = JSON.stringify([
      state.notebook,
      state.health.status,
      state.health.checks.map((c) => c.status),
    ]);
    if (signature === this.lastSignature) return;
    this.lastSignature = signature;
    for (const listener of this.listeners) listener.onState(state);
  }

  private async refreshCertificate(restartOnChange = false): Promise<void> {
    this.lastCertCheck = Date.now();
    const result = await ensureCertificate(this.paths, {
      hostnames: this.settings.hostnames,
      ips: this.settings.ips,
      ...(this.owner ? { owner: this.owner } : {}),
    });
    await this.rememberCertificate(result.info);
    if (result.action === "kept") return;
    const level = result.action === "regenerated" ? "warn" : "info";
    this.recordEvent(
      level,
      `certificate.${result.action}`,
      `certificate ${result.action}${result.reason ? `: ${result.reason}` : ""}`,
      {
        fingerprintSha256: result.info.fingerprintSha256,
        notAfter: result.info.notAfter,
      },
    );
    if (restartOnChange && this.supervisor) await this.restartIfRunning();
  }

  private createAcmeRenewer(): AcmeRenewer | null {
    const { mode, hostname } = this.settings.certificate;
    if (mode !== "acme" || !hostname) return null;
    return new AcmeRenewer({
      dataDir: this.paths.dataDir,
      hostname,
      onIssued: async (issued) => {
        await this.refreshCertificate();
        this.recordEvent(
          "info",
          "certificate.acme_issued",
          `certificate for ${hostname} issued by ${issued.issuer}, valid until ${issued.notAfter}`,
          { fingerprintSha256: issued.fingerprintSha256, notAfter: issued.notAfter, issuer: issued.issuer },
        );
        if (this.supervisor && !(await this.serving(issued.fingerprintSha256))) await this.restartIfRunning();
      },
      onFailed: (failure) =>
        this.recordEvent("warn", "certificate.acme_failed", failure.message, {
          code: failure.code,
          ...(failure.problemType ? { problemType: failure.problemType } : {}),
          nextAttemptAt: failure.nextAttemptAt,
        }),
    });
  }

  /** With its issuer, the chain's validity and the days left, read from the cert.pem just checked. */
  private async rememberCertificate(info: CertificateInfo): Promise<void> {
    const { fingerprintSha256, notBefore, notAfter, subjectAltNames, selfSigned } = info;
    const basic = { fingerprintSha256, notBefore, notAfter, subjectAltNames, selfSigned };
    const pem = await readFile(this.paths.certFile, "utf8").catch(() => null);
    const report = pem === null ? null : await reportCertificateFile(pem, this.paths).catch(() => null);
    this.certificate = report?.fingerprintSha256 === fingerprintSha256 ? report : basic;
  }

  private notebookStatus(): NotebookStatus {
    const snapshot = this.supervisor?.snapshot();
    return {
      state: snapshot?.state ?? (this.install ? "stopped" : "not_installed"),
      pid: snapshot?.pid ?? null,
      port: this.settings.port,
      url: this.publicUrl(),
      restarts: snapshot?.restarts ?? 0,
      startedAt: snapshot?.startedAt ?? null,
      generation: this.install?.generation ?? null,
      version: this.install?.version ?? null,
      certificate: this.certificate,
      lastError: snapshot?.lastError ?? null,
    };
  }

  private checkTarget(): CheckTarget {
    return {
      host: loopbackFor(this.settings.ip),
      port: this.settings.port,
      baseUrl: this.settings.baseUrl,
      token: this.token,
      pid: this.supervisor?.snapshot().pid ?? null,
      certFile: this.paths.certFile,
      diskPath: this.notebookDir(),
      dataDir: this.paths.dataDir,
      writeProblems: this.writes.problems(),
    };
  }

  /** Terminal sessions run as the notebook's user (known once `up` resolved it), in its home. */
  terminalTarget(): TerminalTarget {
    return { user: this.owner };
  }

  /** A log line as it may leave the guest: without the agent-only token. */
  redactLog(line: string): string {
    return redactLine(line, this.token ? [this.token] : []);
  }

  publicUrl(): string {
    return notebookUrl(this.settings);
  }

  private notebookDir(): string {
    return this.settings.notebookDir ?? this.paths.defaultNotebookDir;
  }

  private async writeProfile(): Promise<void> {
    await writeProfile(
      this.paths,
      this.install!.generation,
      {
        ip: this.settings.ip,
        port: this.settings.port,
        notebookDir: this.notebookDir(),
        baseUrl: this.settings.baseUrl,
        certFile: this.paths.certFile,
        keyFile: this.paths.keyFile,
        passwordHash: await this.readPasswordHash(),
        agentToken: this.token,
        allowRoot: this.owner === null && this.isRoot,
      },
      this.owner,
    );
  }

  private async applyInitialPasswordHash(hash: string): Promise<void> {
    validateHash(hash);
    const current = await this.readPasswordHash().catch(() => null);
    if (current === null) {
      await this.storePasswordHash(hash);
      return;
    }
    if (current === hash) return;
    this.recordEvent(
      "info",
      "password.initial-ignored",
      "the password handed over at start-up was not applied: this data directory already has one, which only a password command changes",
    );
  }

  private async storePasswordHash(hash: string): Promise<void> {
    validateHash(hash);
    await writeFileAtomic(`${this.paths.stateDir}/password-hash`, `${hash}\n`, { mode: 0o600 });
  }

  private async readPasswordHash(): Promise<string> {
    try {
      const hash = (await readFile(`${this.paths.stateDir}/password-hash`, "utf8")).trim();
      validateHash(hash);
      return hash;
    } catch (error) {
      if (error instanceof AgentError) throw error;
      throw new AgentError(
        "NBF_PASSWORD_INVALID",
        "no notebook password is set for this data directory; give one with --password-stdin, --password-hash-file or --password-hash",
      );
    }
  }

  private async readRestarts(): Promise<number> {
    try {
      const { restarts } = JSON.parse(await readFile(this.paths.restartsFile, "utf8")) as {
        restarts?: unknown;
      };
      return typeof restarts === "number" && Number.isInteger(restarts) && restarts >= 0 ? restarts : 0;
    } catch {
      return 0;
    }
  }

  /** Never rejects: a write the disk refused is retried until it lands (see LatestFile). */
  private async saveRestarts(restarts: number): Promise<void> {
    await this.restartsFile.write(`${JSON.stringify({ restarts })}\n`);
  }

  /** Logs an event, keeps it in the event log and tells the listeners (the link sends it on). */
  recordEvent(
    level: AgentEvent["level"],
    kind: string,
    message: string,
    data?: Record<string, unknown>,
  ): void {
    const event: AgentEvent = {
      at: new Date().toISOString(),
      level,
      kind,
      message,
      ...(data ? { data } : {}),
    };
    this.log[level]({ kind, ...data }, message);
    void this.events.append(event);
    for (const listener of this.listeners) listener.onEvent(event);
  }
}

async function prepareDirectories(paths: DataPaths): Promise<void> {
  await mkdir(paths.dataDir, { recursive: true });
  // Others (the notebook's own user) must traverse the data dir to reach their profile and logs.
  await chmod(paths.dataDir, 0o711);
  for (const dir of [paths.stateDir, paths.runDir]) await mkdir(dir, { recursive: true, mode: 0o700 });
  await mkdir(paths.logsDir, { recursive: true, mode: 0o755 });
}

function loopbackFor(ip: string): string {
  if (isWildcard(ip)) return ip === "::" ? "::1" : "127.0.0.1";
  return ip;
}
