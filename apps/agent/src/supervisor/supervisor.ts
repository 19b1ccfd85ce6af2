/**
 * Supervises one notebook server process.
 *
 *   not running ──start()──▶ starting ──ready──▶ running ──exit (not asked)──▶ backoff ──delay──▶ starting
 *        ▲                                           │                            │
 *        └──────────── stop(): stopping ◀────────────┘          too many crashes ─┴──▶ failed
 *
 * The server is started detached, in its own process group, with stdin from /dev/null and its
 * output going straight to a capped log file, so it outlives the agent. A pidfile holding the
 * pid, the kernel's start time of that pid and the port lets the next agent re-adopt it instead
 * of restarting a healthy server.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import type { AgentEvent, NotebookState } from "@nbfleet/shared";
import type { RestartPolicy } from "../config/settings.js";
import { AgentError } from "../errors.js";
import { LatestFile } from "../util/latest-file.js";
import { type WriteReporter, ignoreWrites } from "../util/write-failures.js";
import { CrashPolicy } from "./crash-policy.js";
import { capLogFile, openAppend, tailLines } from "./log-file.js";
import { type PidRecord, formatPidRecord, readPidRecord } from "./pidfile.js";
import { assertPortFree, canListen } from "./port.js";
import { isRunning, readProcStat } from "./proc.js";

export interface LaunchSpec {
  argv: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  owner: { uid: number; gid: number } | null;
}

export interface SupervisorOptions {
  ip: string;
  port: number;
  pidFile: string;
  logFile: string;
  logMaxBytes: number;
  restart: RestartPolicy;
  stopGraceMs: number;
  readyTimeoutMs?: number;
  /** Resolves true once `GET /api` answers over TLS. */
  probe: () => Promise<boolean>;
  /** Built fresh at every start, so a changed profile is picked up. */
  launchSpec: () => Promise<LaunchSpec>;
  onEvent: (event: Omit<AgentEvent, "at">) => void;
  onChange: () => void;
  /** Restarts done so far (kept across agent restarts by the caller). */
  restarts?: number;
  onRestartsChanged?: (restarts: number) => void;
  /** Where failed writes (pid record, log cap) are told; they never fail a start or stop. */
  writes?: WriteReporter;
}

export interface SupervisorSnapshot {
  state: NotebookState;
  pid: number | null;
  startedAt: string | null;
  restarts: number;
  lastError: string | null;
}

/** Readiness polls: a refused connection costs well under a millisecond, a late answer costs a restart. */
const POLL_MS = 25;
/** How often a stopping server is looked at when it is not our child (an exit event tells us otherwise). */
const EXIT_POLL_MS = 25;
const EXIT_WATCH_MS = 500;
const LOG_CAP_EVERY_MS = 5000;

export class Supervisor {
  private state: NotebookState = "stopped";
  private record: PidRecord | null = null;
  private child: ChildProcess | null = null;
  private lastError: string | null = null;
  private restarts: number;
  private readonly crashes: CrashPolicy;
  private backoffTimer: NodeJS.Timeout | null = null;
  private watchTimer: NodeJS.Timeout | null = null;
  private logTimer: NodeJS.Timeout | null = null;
  /** The pid record, rewritten until it lands: a full disk must not orphan a started server. */
  private readonly pidRecord: LatestFile;
  /** Serializes start/stop/restart so two operators cannot interleave them. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** While a launch waits for readiness it handles an early exit itself. */
  private launching = false;

  constructor(private readonly options: SupervisorOptions) {
    this.restarts = options.restarts ?? 0;
    this.crashes = new CrashPolicy(options.restart);
    const writes = options.writes ?? ignoreWrites;
    this.pidRecord = new LatestFile(options.pidFile, "notebook pid record", writes);
    this.logTimer = setInterval(
      () =>
        capLogFile(options.logFile, options.logMaxBytes).then(
          () => writes.succeeded("notebook log cap"),
          (error: unknown) => writes.failed("notebook log cap", options.logFile, error),
        ),
      LOG_CAP_EVERY_MS,
    );
    this.logTimer.unref();
  }

  snapshot(): SupervisorSnapshot {
    return {
      state: this.state,
      pid: this.record?.pid ?? null,
      startedAt: this.record?.startedAt ?? null,
      restarts: this.restarts,
      lastError: this.lastError,
    };
  }

  /** At agent start: re-adopt a server the previous agent left running, else start one. */
  adoptOrStart(): Promise<"adopted" | "started"> {
    return this.serialized(async () => {
      const previous = await readPidRecord(this.options.pidFile);
      if (
        previous &&
        (await isRunning(previous.pid, previous.startTime)) &&
        previous.port === this.options.port
      ) {
        this.record = previous;
        this.setState("starting");
        if (await this.waitReady(previous.pid)) {
          this.setState("running");
          this.watch(previous.pid);
          this.emit(
            "info",
            "notebook.adopted",
            `re-adopted the running notebook server (pid ${previous.pid})`,
            {
              pid: previous.pid,
            },
          );
          return "adopted";
        }
        this.emit(
          "warn",
          "notebook.adopt_failed",
          `pid ${previous.pid} did not answer on port ${previous.port}; restarting it`,
        );
        await this.terminate(previous.pid);
      }
      await this.launch();
      return "started";
    });
  }

  start(): Promise<void> {
    return this.serialized(async () => {
      if (this.state === "running" || this.state === "starting") return;
      this.cancelBackoff();
      this.crashes.reset();
      await this.launch();
    });
  }

  stop(): Promise<void> {
    return this.serialized(() => this.halt());
  }

  restart(): Promise<void> {
    return this.serialized(async () => {
      this.crashes.reset();
      await this.halt();
      this.bumpRestarts();
      await this.launch();
      this.emit("info", "notebook.restarted", `notebook server restarted (pid ${this.record?.pid})`, {
        pid: this.record?.pid,
      });
    });
  }

  tail(lines: number): Promise<string[]> {
    return tailLines(this.options.logFile, lines);
  }

  /** Stops supervising; the server itself keeps running for the next agent to adopt. */
  detach(): void {
    this.closed = true;
    this.cancelBackoff();
    if (this.watchTimer) clearInterval(this.watchTimer);
    if (this.logTimer) clearInterval(this.logTimer);
    this.pidRecord.close();
    this.child?.removeAllListeners("exit");
  }

  private serialized<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async launch(): Promise<void> {
    this.setState("starting");
    this.launching = true;
    try {
      await assertPortFree(this.options.ip, this.options.port);
      const spec = await this.options.launchSpec();
      const log = await openAppend(this.options.logFile, spec.owner);
      let child: ChildProcess;
      let started: Promise<number>;
      try {
        child = spawn(spec.argv[0]!, spec.argv.slice(1), {
          cwd: spec.cwd,
          env: spec.env,
          detached: true,
          stdio: ["ignore", log.fd, log.fd],
          ...(spec.owner ? { uid: spec.owner.uid, gid: spec.owner.gid } : {}),
        });
        started = spawned(child);
      } finally {
        await log.close();
      }
      const pid = await started;
      child.unref();
      this.child = child;
      const stat = await readProcStat(pid);
      this.record = {
        pid,
        startTime: stat?.startTime ?? 0,
        port: this.options.port,
        startedAt: new Date().toISOString(),
      };
      await this.pidRecord.write(formatPidRecord(this.record));
      child.once("exit", (code, signal) => this.onExit(pid, describeExit(code, signal)));
      if (!(await this.waitReady(pid))) {
        const tail = await this.tail(20);
        await this.terminate(pid);
        throw new AgentError(
          "NBF_NOTEBOOK_START_FAILED",
          `the notebook server did not answer GET /api over TLS on port ${this.options.port}; last log lines:\n${tail.join("\n")}`,
          { port: this.options.port },
        );
      }
      this.lastError = null;
      this.setState("running");
      this.emit("info", "notebook.started", `notebook server running (pid ${pid})`, { pid });
    } catch (error) {
      this.lastError = error instanceof Error ? error.message : String(error);
      this.record = null;
      await this.pidRecord.remove();
      this.setState("failed");
      this.emit("error", "notebook.start_failed", this.lastError);
      throw error;
    } finally {
      this.launching = false;
    }
  }

  private async waitReady(pid: number): Promise<boolean> {
    const deadline = Date.now() + (this.options.readyTimeoutMs ?? 60_000);
    while (Date.now() < deadline) {
      if (!(await isRunning(pid))) return false;
      if (await this.options.probe().catch(() => false)) return true;
      await sleep(POLL_MS);
    }
    return false;
  }

  /** Watches a process that is not our child (re-adopted) for its exit. */
  private watch(pid: number): void {
    if (this.watchTimer) clearInterval(this.watchTimer);
    const startTime = this.record?.startTime;
    this.watchTimer = setInterval(async () => {
      if (this.record?.pid !== pid) return;
      if (!(await isRunning(pid, startTime)))
        this.onExit(pid, "exited (seen by polling; exit status unknown)");
    }, EXIT_WATCH_MS);
    this.watchTimer.unref();
  }

  private onExit(pid: number, how: string): void {
    if (this.closed || this.launching || this.record?.pid !== pid) return;
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.child = null;
    if (this.state === "stopping") return;
    const startedAt = this.record.startedAt ? Date.parse(this.record.startedAt) : null;
    this.record = null;
    void this.pidRecord.remove();
    const decision = this.crashes.onCrash(startedAt, Date.now());
    void this.tail(20)
      .catch(() => [] as string[])
      .then((tail) => {
        if (decision.action === "give_up") {
          this.lastError = `notebook server ${how}; ${decision.crashes} crashes within ${Math.round(this.options.restart.crashWindowMs / 1000)} s, giving up. Last log lines:\n${tail.join("\n")}`;
          this.setState("failed");
          this.emit("error", "notebook.failed", this.lastError, { pid });
          return;
        }
        this.lastError = `notebook server ${how}; restarting in ${decision.delayMs} ms`;
        this.setState("backoff");
        this.emit("warn", "notebook.crashed", this.lastError, {
          pid,
          delayMs: decision.delayMs,
          lastLines: tail,
        });
        this.backoffTimer = setTimeout(() => {
          this.backoffTimer = null;
          void this.serialized(async () => {
            if (this.state !== "backoff") return;
            this.bumpRestarts();
            await this.launch().catch(() => this.onLaunchFailedDuringBackoff());
          });
        }, decision.delayMs);
      });
  }

  /** A start that fails while recovering counts as one more crash. */
  private onLaunchFailedDuringBackoff(): void {
    const decision = this.crashes.onCrash(null, Date.now());
    if (decision.action === "give_up") return; // launch() already set `failed` with its reason
    this.setState("backoff");
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = null;
      void this.serialized(() => this.launch().catch(() => this.onLaunchFailedDuringBackoff()));
    }, decision.delayMs);
  }

  private async halt(): Promise<void> {
    this.cancelBackoff();
    const record = this.record;
    if (!record) {
      this.setState("stopped");
      return;
    }
    this.setState("stopping");
    await this.terminate(record.pid, record.port);
    this.record = null;
    this.child = null;
    await this.pidRecord.remove();
    this.setState("stopped");
    this.emit("info", "notebook.stopped", `notebook server stopped (pid ${record.pid})`, { pid: record.pid });
  }

  /**
   * SIGTERM to the server's process group, SIGKILL after the grace period. With `port`, stopped
   * also means the port is free again: a kernel the server was still starting can hold its
   * listening socket for a moment after the server itself exited.
   */
  private async terminate(pid: number, port?: number): Promise<void> {
    const startTime = (await readProcStat(pid))?.startTime;
    // Our own child says when it is gone; a re-adopted server is polled through /proc.
    const child = this.child?.pid === pid && this.child.exitCode === null && this.child.signalCode === null;
    const exited = child ? new Promise<void>((resolve) => this.child!.once("exit", () => resolve())) : null;
    const gone = async (ms: number) => {
      if (!(await isRunning(pid, startTime))) return true;
      await (exited ? Promise.race([exited, sleep(ms)]) : sleep(ms));
      return !(await isRunning(pid, startTime));
    };
    const portFree = async () =>
      port === undefined || (await canListen(this.options.ip, port).catch(() => true));
    signalGroup(pid, "SIGTERM");
    const deadline = Date.now() + this.options.stopGraceMs;
    let exitedInTime = false;
    while (Date.now() < deadline && !exitedInTime) exitedInTime = await gone(EXIT_POLL_MS);
    if (!exitedInTime) {
      signalGroup(pid, "SIGKILL");
      while (!(await gone(EXIT_POLL_MS)));
    }
    while (Date.now() < deadline && !(await portFree())) await sleep(EXIT_POLL_MS);
    if (await portFree()) return;
    // What is left of the group (the leader is gone, so never its pid alone); launch names any other holder.
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // no such group
    }
    for (let i = 0; i < 20 && !(await portFree()); i++) await sleep(EXIT_POLL_MS);
  }

  private cancelBackoff(): void {
    if (this.backoffTimer) clearTimeout(this.backoffTimer);
    this.backoffTimer = null;
  }

  private bumpRestarts(): void {
    this.restarts += 1;
    this.options.onRestartsChanged?.(this.restarts);
  }

  private setState(state: NotebookState): void {
    if (this.state === state) return;
    this.state = state;
    this.options.onChange();
  }

  private emit(
    level: AgentEvent["level"],
    kind: string,
    message: string,
    data?: Record<string, unknown>,
  ): void {
    this.options.onEvent({ level, kind, message, ...(data ? { data } : {}) });
  }
}

function spawned(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    child.once("error", reject);
    child.once("spawn", () => resolve(child.pid!));
  });
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `was killed by ${signal}` : `exited with code ${code}`;
}
