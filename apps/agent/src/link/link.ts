/**
 * The agent's one WebSocket to its controller. The agent dials out, says hello with its whole
 * state, and once welcomed reports state (on change, coalesced, and at the controller's
 * steady interval) and events, and answers commands with ack, progress and one result. The
 * life of the link is one reconnect loop around one connection at a time:
 *
 *   pick secret ─▶ dial (TLS checked before a byte is sent) ─▶ hello ─▶ welcome ─▶ connected
 *        ▲                                                                        │
 *        └──── backoff (full jitter; slow after refusals an operator must fix) ◀──┘ close / silence
 *
 * State is level-based: every hello carries the whole state again, never a diff. Events and
 * results that happen while disconnected are kept (bounded) and sent after the next welcome.
 */
import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import os from "node:os";
import {
  AGENT_VERSION,
  type AgentEvent,
  COMMAND_NAMES,
  CloseCode,
  type CommandError,
  type CommandMessage,
  type ControllerStreamMessage,
  PROTOCOL_VERSION,
  type WelcomeMessage,
} from "@nbfleet/shared";
import WebSocket from "ws";
import type { LinkSettings } from "../config/settings.js";
import { DEFAULT_SETTINGS } from "../config/settings.js";
import type { AgentCore, CommandOutcome } from "../core.js";
import { AgentError } from "../errors.js";
import { formatFingerprint } from "../tls/fingerprint.js";
import { Backoff } from "./backoff.js";
import { type CloseVerdict, type RetryPace, judgeClose } from "./close-reason.js";
import { readCredential, storeCredential } from "./credential.js";
import { TlsRefusedError, type TlsTrust, connectUrl, isLoopback, verifiedTlsConnection } from "./dial.js";
import type { LinkLog, LinkLogLevel } from "./log.js";
import { type ControllerFrame, parseControllerFrame } from "./messages.js";
import { type UpgradeRefusal, readRefusal } from "./refusal.js";
import type { LinkStreams } from "./streams.js";

export interface LinkTiming {
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** Ceiling after refusals only an operator can fix. */
  slowBackoffMs: number;
  /** A welcomed connection that lived this long resets the backoff. */
  stableMs: number;
  /** The controller's ping interval as assumed here; 3× of silence means it is gone. */
  pingIntervalMs: number;
  /** State changes are sent at most this often. */
  stateCoalesceMs: number;
  /** TCP + TLS + upgrade must finish within this. */
  dialTimeoutMs: number;
  /** Events kept while disconnected; the oldest go first. */
  maxBufferedEvents: number;
  /** Command results kept while disconnected. */
  maxUndeliveredResults: number;
}

export function timingFromSettings(link: LinkSettings): LinkTiming {
  return {
    initialBackoffMs: link.initialBackoffMs,
    maxBackoffMs: link.maxBackoffMs,
    slowBackoffMs: link.slowBackoffMs,
    stableMs: link.stableMs,
    pingIntervalMs: Math.round(link.pingIntervalSec * 1000),
    stateCoalesceMs: 250,
    dialTimeoutMs: 15_000,
    maxBufferedEvents: 256,
    maxUndeliveredResults: 100,
  };
}

export const DEFAULT_LINK_TIMING: LinkTiming = timingFromSettings(DEFAULT_SETTINGS.link);

export interface LinkTlsOptions {
  /** Trust only this CA (PEM file) for the controller's certificate. */
  caFile?: string;
  /** Pin the controller's own certificate (SHA-256, any hex spelling; stored uppercase colon hex). */
  fingerprintSha256?: string;
}

export type LinkStatus =
  | { state: "connecting"; attempt: number }
  | { state: "connected"; vmName: string }
  | { state: "waiting"; retryInMs: number; pace: RetryPace }
  | { state: "stopped" };

export interface LinkOptions {
  /** The controller's base URL (http(s):// or ws(s)://) or its full agent endpoint. */
  url: string;
  /** Where the credential lives (read before each dial, written 0600 when one is issued). */
  credentialFile: string;
  /** One-time token, used while no credential is stored. */
  bootstrapToken?: string;
  tls?: LinkTlsOptions;
  core: AgentCore;
  log: LinkLog;
  signal: AbortSignal;
  /** Command names sent in the hello; all the protocol knows by default (plus the streams'). */
  capabilities?: string[];
  /** Serves terminal sessions and log streams; without it they are refused. */
  streams?: LinkStreams;
  timing?: Partial<LinkTiming>;
  hostname?: string;
  /** For tests: the jitter source. */
  random?: () => number;
  onStatus?: (status: LinkStatus) => void;
}

type Presented = "credential" | "bootstrap";

interface Connection {
  ws: WebSocket;
  presented: Presented;
  secret: string;
  dialedAt: number;
  lastHeardAt: number;
  welcomed: boolean;
  welcomedAt: number | null;
  error: Error | null;
  /** Set when the link itself decided why this connection ends. */
  verdict: CloseVerdict | null;
  /** Set when the controller answered the upgrade with an HTTP error instead of a WebSocket. */
  refusal: UpgradeRefusal | null;
  reportTimer: NodeJS.Timeout | undefined;
}

interface Ended {
  verdict: CloseVerdict;
  stable: boolean;
}

type ResultBody = { commandId: string; ok: boolean; data?: unknown; error?: CommandError };

const MAX_PAYLOAD = 16 * 1024 * 1024;
const CLOSE_GRACE_MS = 2000;
const REPEAT_WINDOW_MS = 60_000;

export class ControllerLink {
  private readonly timing: LinkTiming;
  private readonly target: URL;
  private readonly trust: TlsTrust | null;
  private readonly backoff: Backoff;
  private current: Connection | null = null;
  private statusValue: LinkStatus = { state: "stopped" };
  private vmNameValue: string | null = null;
  private readonly bufferedEvents: AgentEvent[] = [];
  private droppedEvents = 0;
  private readonly undelivered = new Map<string, ResultBody>();
  private stateDirty = false;
  private lastStateAt = 0;
  private stateTimer: NodeJS.Timeout | undefined;
  /** A credential the controller refused; with a bootstrap token at hand it is not presented again. */
  private refusedCredential: string | null = null;
  /** A credential that could not be written to disk is still used from memory. */
  private memoryCredential: string | null = null;
  private running = false;
  private attempt = 0;
  private lastSaid: { key: string; at: number; repeats: number } | null = null;

  constructor(private readonly options: LinkOptions) {
    this.timing = { ...DEFAULT_LINK_TIMING, ...options.timing };
    this.target = connectUrl(options.url);
    this.backoff = new Backoff(
      { initialMs: this.timing.initialBackoffMs, maxMs: this.timing.maxBackoffMs },
      options.random,
    );
    const { caFile, fingerprintSha256 } = options.tls ?? {};
    const secure = this.target.protocol === "wss:";
    if (!secure && (caFile || fingerprintSha256)) {
      throw new AgentError(
        "NBF_INVALID_INPUT",
        `a controller CA or fingerprint needs a TLS URL (https:// or wss://), got ${this.target.origin}`,
        { url: this.target.href },
      );
    }
    this.trust = secure
      ? { ...(fingerprintSha256 ? { fingerprintSha256: formatFingerprint(fingerprintSha256) } : {}) }
      : null;
  }

  get status(): LinkStatus {
    return this.statusValue;
  }

  /** The VM the controller knows this agent as, once welcomed. */
  get vmName(): string | null {
    return this.vmNameValue;
  }

  /** Dials, and dials again, until the signal aborts; resolves once the last connection is closed. */
  async run(): Promise<void> {
    if (this.running) throw new Error("the controller link is already running");
    const { core, signal, log } = this.options;
    if ((await this.storedCredential()) === null && !this.options.bootstrapToken) {
      throw new AgentError(
        "NBF_INVALID_INPUT",
        `no controller credential at ${this.options.credentialFile} and no bootstrap token; ` +
          "give one with --bootstrap-token-file or NBFLEET_BOOTSTRAP_TOKEN",
        { file: this.options.credentialFile },
      );
    }
    this.running = true;
    if (this.target.protocol === "ws:" && !isLoopback(this.target)) {
      log.warn(
        `the controller at ${this.target.origin} is reached without TLS: the credential travels in clear text`,
      );
    }
    const unsubscribe = core.subscribe({
      onState: () => this.onCoreState(),
      onEvent: (event) => this.onCoreEvent(event),
    });
    try {
      while (!signal.aborted) {
        this.attempt++;
        this.setStatus({ state: "connecting", attempt: this.attempt });
        const ended = await this.connectOnce();
        if (signal.aborted) break;
        if (ended.stable) this.backoff.reset();
        this.say(ended.verdict.level, ended.verdict.message);
        const { pace } = ended.verdict;
        const delay =
          pace === "slow"
            ? this.backoff.slow(this.timing.slowBackoffMs)
            : this.backoff.next(pace === "patient" ? this.timing.slowBackoffMs : this.timing.maxBackoffMs);
        this.setStatus({ state: "waiting", retryInMs: delay, pace });
        await sleep(delay, signal);
      }
    } finally {
      unsubscribe();
      clearTimeout(this.stateTimer);
      this.stateTimer = undefined;
      this.running = false;
      this.setStatus({ state: "stopped" });
    }
  }

  // ---- one connection ------------------------------------------------------------------

  private async connectOnce(): Promise<Ended> {
    const refused = (level: LinkLogLevel, message: string): Ended => ({
      verdict: { level, message, pace: "patient" },
      stable: false,
    });
    let secret: { value: string; presented: Presented } | null;
    let trust: TlsTrust | null;
    try {
      secret = await this.pickSecret();
      trust = await this.loadTrust();
    } catch (error) {
      return refused("error", (error as Error).message);
    }
    if (!secret) {
      return refused(
        "error",
        `no controller credential at ${this.options.credentialFile} and no bootstrap token to get one`,
      );
    }
    const ws = new WebSocket(this.target, {
      headers: { authorization: `Bearer ${secret.value}` },
      perMessageDeflate: false,
      followRedirects: false,
      handshakeTimeout: this.timing.dialTimeoutMs,
      maxPayload: MAX_PAYLOAD,
      ...(trust
        ? {
            createConnection: verifiedTlsConnection(
              trust,
              this.timing.dialTimeoutMs,
            ) as unknown as WebSocket.ClientOptions["createConnection"],
          }
        : {}),
    });
    const now = Date.now();
    const connection: Connection = {
      ws,
      presented: secret.presented,
      secret: secret.value,
      dialedAt: now,
      lastHeardAt: now,
      welcomed: false,
      welcomedAt: null,
      error: null,
      verdict: null,
      refusal: null,
      reportTimer: undefined,
    };
    return new Promise<Ended>((resolve) => {
      let chain: Promise<void> = Promise.resolve();
      const heard = () => {
        connection.lastHeardAt = Date.now();
      };
      const deadAfterMs = 3 * this.timing.pingIntervalMs;
      const watchdog = setInterval(
        () => {
          const silentMs = Date.now() - connection.lastHeardAt;
          if (silentMs <= deadAfterMs) return;
          connection.verdict = {
            level: "warn",
            pace: "normal",
            message:
              `no ping or message from the controller for ${formatMs(silentMs)} ` +
              `(3 × the ${formatMs(this.timing.pingIntervalMs)} ping interval); dropping the connection and dialing again`,
          };
          ws.terminate();
        },
        Math.max(10, Math.min(1000, Math.floor(deadAfterMs / 4))),
      );
      const onAbort = () => {
        if (ws.readyState === WebSocket.CONNECTING) return ws.terminate();
        ws.close(1000, "agent shutting down");
        setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
      };
      this.options.signal.addEventListener("abort", onAbort, { once: true });

      ws.on("open", () => {
        heard();
        this.stateDirty = false;
        this.sendOn(ws, {
          type: "hello",
          agent: {
            version: AGENT_VERSION,
            hostname: this.options.hostname ?? os.hostname(),
            os: process.platform,
            arch: process.arch,
          },
          capabilities: this.options.capabilities ?? [
            ...COMMAND_NAMES,
            ...(this.options.streams?.capabilities ?? []),
          ],
          state: this.options.core.state(),
        });
      });
      // The controller refuses an unknown secret before the upgrade: read why, then end the attempt.
      ws.on("unexpected-response", (_request, response) => {
        void readRefusal(response, CLOSE_GRACE_MS).then((refusal) => {
          connection.refusal = refusal;
          ws.terminate();
        });
      });
      ws.on("ping", heard);
      ws.on("pong", heard);
      ws.on("message", (data, isBinary) => {
        heard();
        const frame = parseControllerFrame(data as Buffer, isBinary);
        chain = chain
          .then(() => this.onFrame(connection, frame))
          .catch((error) => this.options.log.error(`handling a controller message failed: ${String(error)}`));
      });
      ws.on("error", (error) => {
        connection.error ??= error;
      });
      ws.on("close", (code, reasonBuffer) => {
        clearInterval(watchdog);
        clearInterval(connection.reportTimer);
        this.options.signal.removeEventListener("abort", onAbort);
        if (this.current === connection) {
          this.current = null;
          clearTimeout(this.stateTimer);
          this.stateTimer = undefined;
        }
        if (connection.welcomed) this.options.streams?.disconnected();
        const reason = reasonBuffer.toString();
        const refusedHttp = connection.refusal?.status === 401 || connection.refusal?.status === 403;
        if ((code === CloseCode.unauthorized || refusedHttp) && connection.presented === "credential") {
          this.refusedCredential = connection.secret;
        }
        const verdict = connection.verdict ?? this.verdictFor(connection, code, reason);
        const stable =
          connection.welcomedAt !== null && Date.now() - connection.welcomedAt > this.timing.stableMs;
        resolve({ verdict, stable });
      });
    });
  }

  private verdictFor(connection: Connection, code: number, reason: string): CloseVerdict {
    const { error, refusal } = connection;
    if (error instanceof TlsRefusedError) return { level: "error", pace: "patient", message: error.message };
    if (refusal) {
      const said = `${refusal.code ? `${refusal.code}: ` : ""}${refusal.message}`;
      if (refusal.status === 401 || refusal.status === 403) {
        return judgeClose({
          code: CloseCode.unauthorized,
          reason: said,
          presented: connection.presented,
          credentialFile: this.options.credentialFile,
          welcomed: false,
        });
      }
      return {
        level: "warn",
        pace: "normal",
        message: `the controller at ${this.target.href} refused the connection with HTTP ${refusal.status}: ${said}`,
      };
    }
    if (!connection.welcomed && error && code === 1006) {
      return {
        level: "warn",
        pace: "normal",
        message: `cannot reach the controller at ${this.target.href}: ${error.message}`,
      };
    }
    return judgeClose({
      code,
      reason,
      presented: connection.presented,
      credentialFile: this.options.credentialFile,
      welcomed: connection.welcomed,
    });
  }

  private async onFrame(connection: Connection, frame: ControllerFrame): Promise<void> {
    const { log } = this.options;
    switch (frame.kind) {
      case "welcome":
        return this.onWelcome(connection, frame.message);
      case "command":
        return this.onCommand(connection, frame.message);
      case "stream":
        return this.onStream(connection, frame.message);
      case "unrunnable":
        this.sendOn(connection.ws, { type: "ack", commandId: frame.commandId });
        log.warn(`refused command ${frame.commandId}: ${frame.problem}`);
        this.deliverResult({
          commandId: frame.commandId,
          ok: false,
          error: { code: frame.code, message: frame.problem },
        });
        return;
      case "version":
        connection.verdict = {
          level: "error",
          pace: "slow",
          message:
            `the controller speaks protocol ${frame.version}, this agent ${PROTOCOL_VERSION}; ` +
            "upgrade the agent or the controller so their major versions match. Retrying slowly",
        };
        connection.ws.close(CloseCode.protocolVersion, `agent speaks ${PROTOCOL_VERSION}`);
        return;
      case "invalid":
        log.warn(`ignored a message from the controller: ${frame.problem}`);
        return;
    }
  }

  private async onWelcome(connection: Connection, welcome: WelcomeMessage): Promise<void> {
    const { log, credentialFile } = this.options;
    if (connection.welcomed) {
      log.warn("ignored a second welcome on one connection");
      return;
    }
    if (welcome.credential) {
      // Stored before it is used. Should this agent never get to store it, the bootstrap token
      // still works: the controller keeps it until a connection with this credential arrives.
      try {
        await storeCredential(credentialFile, welcome.credential);
        this.memoryCredential = null;
        log.info(
          `stored the agent credential at ${credentialFile} (mode 0600); the bootstrap token is spent`,
        );
      } catch (error) {
        this.memoryCredential = welcome.credential;
        log.error(
          `could not store the agent credential at ${credentialFile} (${(error as Error).message}); ` +
            "it is kept in memory only and will be lost when the agent stops",
        );
      }
      this.refusedCredential = null;
    }
    if (connection.ws.readyState !== WebSocket.OPEN) return;
    connection.welcomed = true;
    connection.welcomedAt = Date.now();
    this.current = connection;
    this.vmNameValue = welcome.vmName;
    this.flushRepeats();
    log.info(`connected to ${this.target.origin} as VM ${welcome.vmName}`);
    this.setStatus({ state: "connected", vmName: welcome.vmName });
    this.flushBuffered();
    this.lastStateAt = Date.now();
    if (this.stateDirty) this.scheduleState();
    connection.reportTimer = setInterval(() => this.sendState(), welcome.reportIntervalSec * 1000);
    connection.reportTimer.unref();
  }

  private async onCommand(connection: Connection, command: CommandMessage): Promise<void> {
    this.sendOn(connection.ws, { type: "ack", commandId: command.id });
    void this.options.core
      .execute(command, (message) => {
        this.send({ type: "progress", commandId: command.id, message: clip(message, 4096) });
      })
      .catch(
        (error): CommandOutcome => ({
          ok: false,
          error: { code: "NBF_INTERNAL", message: error instanceof Error ? error.message : String(error) },
        }),
      )
      .then((outcome) => this.deliverResult({ commandId: command.id, ...outcome }));
  }

  private onStream(connection: Connection, message: ControllerStreamMessage): void {
    if (!connection.welcomed) return;
    const { ws } = connection;
    const out = {
      send: (body: Record<string, unknown>) => this.sendOn(ws, body),
      backlog: () => ws.bufferedAmount,
    };
    if (this.options.streams) {
      this.options.streams.handle(message, out);
      return;
    }
    const error = {
      code: "NBF_COMMAND_UNKNOWN",
      message: "this agent serves no terminal sessions or log streams",
    };
    if (message.type === "pty.open") {
      out.send({ type: "pty.exit", session: message.session, exitCode: null, signal: null, error });
    } else if (message.type === "logs.open") {
      out.send({ type: "logs.end", stream: message.stream, error });
    }
  }

  // ---- what goes out -------------------------------------------------------------------

  private onCoreState(): void {
    this.stateDirty = true;
    this.scheduleState();
  }

  private scheduleState(): void {
    if (!this.current || this.stateTimer) return;
    const wait = Math.max(0, this.lastStateAt + this.timing.stateCoalesceMs - Date.now());
    this.stateTimer = setTimeout(() => {
      this.stateTimer = undefined;
      if (this.stateDirty) this.sendState();
    }, wait);
    this.stateTimer.unref();
  }

  private sendState(): void {
    if (!this.current) return;
    this.stateDirty = false;
    this.lastStateAt = Date.now();
    this.send({ type: "state", state: this.options.core.state() });
  }

  private onCoreEvent(event: AgentEvent): void {
    const safe: AgentEvent = { ...event, kind: clip(event.kind, 64), message: clip(event.message, 8192) };
    if (this.current && this.send({ type: "event", event: safe })) return;
    this.bufferedEvents.push(safe);
    if (this.bufferedEvents.length > this.timing.maxBufferedEvents) {
      this.bufferedEvents.shift();
      this.droppedEvents++;
    }
  }

  private deliverResult(result: ResultBody): void {
    if (this.send({ type: "result", ...result })) return;
    this.undelivered.delete(result.commandId);
    this.undelivered.set(result.commandId, result);
    if (this.undelivered.size > this.timing.maxUndeliveredResults) {
      this.undelivered.delete(this.undelivered.keys().next().value!);
    }
  }

  private flushBuffered(): void {
    if (this.droppedEvents > 0) {
      const message = `${this.droppedEvents} events were dropped while the controller was unreachable`;
      this.options.log.warn(message);
      this.send({
        type: "event",
        event: { at: new Date().toISOString(), level: "warn", kind: "link.events_dropped", message },
      });
      this.droppedEvents = 0;
    }
    for (const event of this.bufferedEvents.splice(0)) this.send({ type: "event", event });
    const results = [...this.undelivered.values()];
    this.undelivered.clear();
    for (const result of results) this.deliverResult(result);
  }

  /** Sends on the welcomed connection; false when there is none. */
  private send(body: Record<string, unknown>): boolean {
    return this.current ? this.sendOn(this.current.ws, body) : false;
  }

  private sendOn(ws: WebSocket, body: Record<string, unknown>): boolean {
    if (ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify({ v: PROTOCOL_VERSION, id: randomUUID(), ...body }));
    return true;
  }

  // ---- secrets and trust ---------------------------------------------------------------

  private async storedCredential(): Promise<string | null> {
    return (await readCredential(this.options.credentialFile)) ?? this.memoryCredential;
  }

  private async pickSecret(): Promise<{ value: string; presented: Presented } | null> {
    const stored = await this.storedCredential();
    const { bootstrapToken } = this.options;
    if (stored && !(bootstrapToken && stored === this.refusedCredential)) {
      return { value: stored, presented: "credential" };
    }
    if (bootstrapToken) return { value: bootstrapToken, presented: "bootstrap" };
    return null;
  }

  /** Read before every dial, so a CA file an operator replaced is picked up. */
  private async loadTrust(): Promise<TlsTrust | null> {
    if (!this.trust) return null;
    const { caFile } = this.options.tls ?? {};
    if (!caFile) return this.trust;
    try {
      return { ...this.trust, ca: await readFile(caFile, "utf8") };
    } catch (error) {
      throw new AgentError(
        "NBF_INVALID_INPUT",
        `cannot read the controller CA file ${caFile}: ${(error as Error).message}`,
        { file: caFile },
      );
    }
  }

  // ---- status and logs -----------------------------------------------------------------

  private setStatus(status: LinkStatus): void {
    this.statusValue = status;
    this.options.onStatus?.(status);
  }

  /** Logs, folding a failure repeated every few hundred ms into one line a minute. */
  private say(level: LinkLogLevel, message: string): void {
    const last = this.lastSaid;
    const now = Date.now();
    if (last && last.key === message && now - last.at < REPEAT_WINDOW_MS) {
      last.repeats++;
      return;
    }
    this.flushRepeats();
    this.lastSaid = { key: message, at: now, repeats: 0 };
    this.options.log[level](message);
  }

  private flushRepeats(): void {
    if (this.lastSaid && this.lastSaid.repeats > 0) {
      this.options.log.info(`(the last message repeated ${this.lastSaid.repeats} more times)`);
    }
    this.lastSaid = null;
  }
}

/** `new ControllerLink(options).run()`. */
export function runLink(options: LinkOptions): Promise<void> {
  return new ControllerLink(options).run();
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s` : `${ms} ms`;
}
