/**
 * A simulated agent that speaks the real protocol over a real WebSocket: hello with a
 * plausible state, periodic state reports, commands answered at once (or after a delay, or
 * with a failure), and a record of everything it received with timestamps. Built to run by
 * the thousand in one process: all agents share one ticker for their reports, and recording
 * can be switched off.
 */
import { hostname as osHostname } from "node:os";
import {
  AGENT_CONNECT_PATH,
  AGENT_VERSION,
  type AgentState,
  type CommandError,
  type CommandMessage,
  type ControllerMessage,
  type HealthCheck,
  type NotebookState,
  PROTOCOL_VERSION,
  type WelcomeMessage,
  foldHealth,
} from "@nbfleet/shared";
import WebSocket from "ws";
import { type SimUpgradeOptions, SimUpgrader } from "./sim-upgrade.js";

export interface Received {
  at: number;
  message: ControllerMessage;
}

export interface SimAgentOptions {
  /** The controller's base URL (http://host:port). */
  url: string;
  /**
   * Several controller URLs (replicas) dialled in turn, starting with `url`'s place in it: after
   * any ended connection the next one, as the real agent's reconnect loop does.
   */
  urls?: string[];
  /** Bootstrap token (`nbfb_…`) or credential (`nbfa_…`). */
  token: string;
  hostname?: string;
  port?: number;
  /** Delay before a command's result (the ack is always immediate). */
  commandDelayMs?: number;
  /** Returns an error to fail a command with, or undefined to succeed. */
  fail?: (command: CommandMessage) => CommandError | undefined;
  /** Commands for which this returns true are recorded but neither acknowledged nor run. */
  ignore?: (command: CommandMessage) => boolean;
  /** Keep every received message (default true; switch off for thousands of agents). */
  record?: boolean;
  /** Reconnect after an unexpected close, with full-jitter backoff (default off). */
  reconnect?: { minMs: number; maxMs: number };
  protocolVersion?: string;
  ticker?: SimTicker;
  /** Run `agent.upgrade` (download, verify, simulated restart); without it the command is a no-op. */
  upgrade?: SimUpgradeOptions;
  /** Capabilities said in the hello beside the usual ones (e.g. `controller.trust`). */
  capabilities?: string[];
  /** The hello's `controllerTrust`: the id of the controller certificate set it holds. */
  controllerTrust?: string;
}

export class SimConnectError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    /** The HTTP status when the controller refused the upgrade itself (401 for an unknown secret). */
    readonly httpStatus: number | null = null,
  ) {
    super(
      httpStatus === null
        ? `connection closed before welcome: ${code} ${reason}`
        : `upgrade refused with HTTP ${httpStatus}`,
    );
  }
}

/** One timer for the periodic reports of every agent in the process. */
export class SimTicker {
  private readonly agents = new Set<SimAgent>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly periodMs = 250) {}

  add(agent: SimAgent): void {
    this.agents.add(agent);
    if (!this.timer) {
      this.timer = setInterval(() => this.tick(), this.periodMs);
      this.timer.unref();
    }
  }

  delete(agent: SimAgent): void {
    this.agents.delete(agent);
    if (this.agents.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  private tick(): void {
    const now = Date.now();
    for (const agent of this.agents) agent.maybeReport(now);
  }
}

const defaultTicker = new SimTicker();
let messageCounter = 0;

export function simChecks(ok: boolean, now = new Date()): HealthCheck[] {
  const at = now.toISOString();
  return [
    { name: "process", status: ok ? "pass" : "fail", message: ok ? "running" : "not running", checkedAt: at },
    {
      name: "https",
      status: ok ? "pass" : "fail",
      message: ok ? "/api answers 6.4.12" : "no answer",
      checkedAt: at,
    },
    { name: "auth", status: "pass", message: "unauthenticated /api/status refused", checkedAt: at },
    {
      name: "tls",
      status: "pass",
      message: "valid for 364 more days",
      checkedAt: at,
      data: { daysLeft: 364, fingerprintSha256: "AA:BB" },
    },
  ];
}

/**
 * When the simulated certificate was made: a real certificate's validity stays put between
 * reports (only a rotation changes it), so a report repeats the same dates.
 */
const CERTIFICATE_ISSUED_MS = Date.now();

/** A whole AgentState as a healthy (or stopped) simulated notebook would report it. */
export function simState(input: {
  state: NotebookState;
  pid: number | null;
  port: number;
  restarts: number;
  startedAt: string | null;
  now?: Date;
}): AgentState {
  const now = input.now ?? new Date();
  const running = input.state === "running";
  return {
    notebook: {
      state: input.state,
      pid: input.pid,
      port: input.port,
      url: `https://127.0.0.1:${input.port}/`,
      restarts: input.restarts,
      startedAt: input.startedAt,
      generation: "notebook6",
      version: "6.4.12",
      certificate: {
        fingerprintSha256: "AA:BB:CC:DD",
        notBefore: new Date(CERTIFICATE_ISSUED_MS - 86_400_000).toISOString(),
        notAfter: new Date(CERTIFICATE_ISSUED_MS + 364 * 86_400_000).toISOString(),
        subjectAltNames: ["DNS:localhost", "IP:127.0.0.1"],
        selfSigned: true,
      },
      lastError: null,
    },
    health: foldHealth(simChecks(running, now), input.state, now),
  };
}

export class SimAgent {
  readonly received: Received[] = [];
  readonly closes: Array<{ at: number; code: number; reason: string }> = [];
  /** Password hashes received through password.set. */
  readonly passwordHashes: string[] = [];
  credential: string | null = null;
  vmName: string | null = null;
  reportIntervalMs = 15_000;
  ws: WebSocket | null = null;
  /** When the first hello since this was last set to null was sent. */
  firstHelloAt: number | null = null;
  /** The version the hello reports (an upgrade changes it). */
  version = AGENT_VERSION;
  /** With the `upgrade` option: runs `agent.upgrade` and records what it did. */
  readonly upgrader: SimUpgrader | null;
  private notebookState: NotebookState = "running";
  private pid = 1000 + Math.floor(Math.random() * 50_000);
  private restarts = 0;
  private startedAt: string | null = new Date().toISOString();
  private nextReportAt = Number.POSITIVE_INFINITY;
  private readonly outcomes = new Map<string, { ok: boolean; error?: CommandError; data?: unknown }>();
  private readonly running = new Set<string>();
  private readonly undelivered = new Map<
    string,
    { commandId: string; ok: boolean; data?: unknown; error?: CommandError }
  >();
  /** Every command this agent ran (a repeated id is answered, not run, so it is not here twice). */
  readonly executed: Array<{ at: number; command: CommandMessage }> = [];
  /** Checks added to every state report (e.g. an `activity` or `kernel` check), made per report. */
  extraChecks: ((now: Date) => HealthCheck[]) | null = null;
  private readonly waiters = new Set<() => void>();
  private stopped = false;
  private attempt = 0;
  private urlIndex = 0;
  /** Connections dialled so far (the first one included). */
  connectAttempts = 0;
  private readonly ticker: SimTicker;
  readonly hostname: string;
  readonly port: number;

  constructor(readonly options: SimAgentOptions) {
    this.ticker = options.ticker ?? defaultTicker;
    this.hostname = options.hostname ?? `sim-${osHostname()}-${++messageCounter}`;
    this.port = options.port ?? 20_000 + (messageCounter % 40_000);
    this.upgrader = options.upgrade ? new SimUpgrader(this, options.upgrade) : null;
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN && this.vmName !== null;
  }

  get pidNow(): number | null {
    return this.notebookState === "running" ? this.pid : null;
  }

  state(): AgentState {
    const state = simState({
      state: this.notebookState,
      pid: this.pidNow,
      port: this.port,
      restarts: this.restarts,
      startedAt: this.startedAt,
    });
    if (this.extraChecks) state.health.checks.push(...this.extraChecks(new Date()));
    return state;
  }

  /** Connects (with the credential once it has one) and resolves with the welcome. */
  connect(): Promise<WelcomeMessage> {
    this.stopped = false;
    this.connectAttempts++;
    const token = this.credential ?? this.options.token;
    const ws = new WebSocket(this.currentUrl().replace(/^http/, "ws") + AGENT_CONNECT_PATH, {
      headers: { authorization: `Bearer ${token}` },
      perMessageDeflate: false,
    });
    this.ws = ws;
    return new Promise((resolve, reject) => {
      let welcomed = false;
      let httpStatus: number | null = null;
      ws.on("unexpected-response", (_request, response) => {
        httpStatus = response.statusCode ?? 0;
        response.resume();
        ws.terminate();
      });
      ws.on("open", () => {
        this.firstHelloAt ??= Date.now();
        this.sendMessage({ type: "hello", ...this.helloBody() });
      });
      ws.on("message", (data) => {
        const message = JSON.parse(String(data)) as ControllerMessage;
        if (this.options.record !== false) this.received.push({ at: Date.now(), message });
        if (message.type === "welcome") {
          welcomed = true;
          this.attempt = 0;
          this.vmName = message.vmName;
          if (message.credential) this.credential = message.credential;
          this.reportIntervalMs = message.reportIntervalSec * 1000;
          this.nextReportAt = Date.now() + Math.random() * this.reportIntervalMs;
          this.ticker.add(this);
          for (const result of this.undelivered.values()) this.sendMessage({ type: "result", ...result });
          this.undelivered.clear();
          resolve(message);
        } else if (message.type === "command") {
          this.onCommand(message);
        }
        this.notify();
      });
      ws.on("close", (code, reason) => {
        this.closes.push({ at: Date.now(), code, reason: reason.toString() });
        this.ticker.delete(this);
        if (!welcomed) reject(new SimConnectError(code, reason.toString(), httpStatus));
        this.notify();
        // A refused secret will not get better by retrying; a connection already superseded
        // (closed by `close()` before a new `connect()`) must not start a second one beside it.
        if (httpStatus !== 401 && this.ws === ws) this.maybeReconnect(code);
      });
      ws.on("error", () => {
        // A close event follows; it carries what matters.
      });
    });
  }

  /** Sends a state report now (e.g. after a change). */
  report(): void {
    this.sendMessage({ type: "state", state: this.state() });
  }

  setNotebook(state: NotebookState): void {
    this.notebookState = state;
    this.report();
  }

  /** Sends anything, valid or not (for abuse tests). */
  sendRaw(data: string | Buffer): void {
    this.ws?.send(data);
  }

  sendMessage(body: Record<string, unknown>): void {
    if (this.ws?.readyState !== WebSocket.OPEN) return;
    this.ws.send(
      JSON.stringify({
        v: this.options.protocolVersion ?? PROTOCOL_VERSION,
        id: `m${++messageCounter}`,
        ...body,
      }),
    );
  }

  /** Resolves once `predicate` holds (checked after every message and close). */
  waitFor(predicate: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
    if (predicate()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!predicate()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`sim agent ${this.hostname}: timed out waiting for ${what}`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  commands(): CommandMessage[] {
    return this.received.filter((r) => r.message.type === "command").map((r) => r.message as CommandMessage);
  }

  /** Closes cleanly and stays closed. */
  close(code = 1000): void {
    this.stopped = true;
    this.ticker.delete(this);
    this.ws?.close(code);
  }

  /** Drops the connection without a close handshake (like a killed process); stays closed. */
  terminate(): void {
    this.stopped = true;
    this.ticker.delete(this);
    this.ws?.terminate();
  }

  /** Called by the ticker. */
  maybeReport(now: number): void {
    if (now < this.nextReportAt || !this.connected) return;
    this.nextReportAt = now + this.reportIntervalMs;
    this.report();
  }

  private helloBody() {
    return {
      agent: { version: this.version, hostname: this.hostname, os: "linux", arch: "x64" },
      capabilities: [
        "notebook",
        "password",
        "certificate",
        ...(this.upgrader ? ["agent.upgrade"] : []),
        ...(this.options.capabilities ?? []),
      ],
      ...(this.options.controllerTrust ? { controllerTrust: this.options.controllerTrust } : {}),
      state: this.state(),
    };
  }

  private onCommand(command: CommandMessage): void {
    if (this.options.ignore?.(command)) return;
    this.sendMessage({ type: "ack", commandId: command.id });
    if (this.upgrader && (command.name as string) === "agent.upgrade") {
      this.upgrader.handle(command);
      return;
    }
    // Like the real agent: a command id seen before is never run again; a finished one is
    // answered from memory, a running one answers when it finishes.
    const known = this.outcomes.get(command.id);
    if (known) {
      this.sendResult({ commandId: command.id, ...known });
      return;
    }
    if (this.running.has(command.id)) return;
    this.running.add(command.id);
    const finish = () => {
      this.running.delete(command.id);
      const error = this.options.fail?.(command);
      const outcome = error ? { ok: false, error } : { ok: true, data: this.apply(command) };
      this.outcomes.set(command.id, outcome);
      this.executed.push({ at: Date.now(), command });
      this.corked(() => {
        if (outcome.ok) this.report();
        this.sendResult({ commandId: command.id, ...outcome });
      });
    };
    const delay = this.options.commandDelayMs ?? 0;
    if (delay > 0) setTimeout(finish, delay).unref();
    else finish();
  }

  /**
   * Frames sent back to back leave in one write, as a real agent's would when its socket is
   * busy; ten thousand agents in one process otherwise pay a system call per frame.
   */
  private corked(send: () => void): void {
    const socket = (this.ws as unknown as { _socket?: { cork(): void; uncork(): void } } | null)?._socket;
    socket?.cork();
    try {
      send();
    } finally {
      socket?.uncork();
    }
  }

  /** Sends a result, or keeps it for the next connection (like the real agent) when there is none. */
  private sendResult(result: { commandId: string; ok: boolean; data?: unknown; error?: CommandError }): void {
    if (this.connected) this.sendMessage({ type: "result", ...result });
    else this.undelivered.set(result.commandId, result);
  }

  private apply(command: CommandMessage): unknown {
    switch (command.name) {
      case "notebook.restart":
        this.pid++;
        this.restarts++;
        this.notebookState = "running";
        this.startedAt = new Date().toISOString();
        return { pid: this.pid };
      case "notebook.start":
        if (this.notebookState !== "running") this.pid++;
        this.notebookState = "running";
        this.startedAt = new Date().toISOString();
        return { pid: this.pid };
      case "notebook.stop":
        this.notebookState = "stopped";
        this.startedAt = null;
        return {};
      case "password.set":
        this.passwordHashes.push(command.params.hash);
        return {};
      case "logs.tail":
        return { lines: [`simulated ${command.params.source} log line`] };
      default:
        return {};
    }
  }

  /** The controller this agent dials (or is connected to) now. */
  currentUrl(): string {
    const urls = this.options.urls;
    if (!urls || urls.length === 0) return this.options.url;
    const first = Math.max(0, urls.indexOf(this.options.url));
    return urls[(first + this.urlIndex) % urls.length]!;
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private maybeReconnect(code: number): void {
    const policy = this.options.reconnect;
    // 4001 (unauthorized) and 4002 (protocol) will not get better by retrying.
    if (!policy || this.stopped || code === 4001 || code === 4002) return;
    this.attempt++;
    this.urlIndex++;
    const ceiling = Math.min(policy.maxMs, policy.minMs * 2 ** this.attempt);
    setTimeout(() => {
      if (!this.stopped) this.connect().catch(() => {});
    }, Math.random() * ceiling).unref();
  }
}
