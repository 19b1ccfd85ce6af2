/**
 * A fake controller for agent tests: a real WebSocket server (plain or TLS) at
 * `/v1/agent/connect` that speaks the protocol from `@nbfleet/shared` and validates every
 * frame with its schemas. It records what agents said, with timestamps and the connection
 * they came on, so tests wait on that record instead of sleeping. It can exchange a bootstrap
 * token for a credential, send commands and await their results, answer a hello by closing
 * with a given code, stay silent, and drop connections. It opens terminal sessions and log
 * streams the way the controller does (`pty.*`, `logs.*`) and gathers what comes back.
 */
import { randomBytes, randomUUID } from "node:crypto";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { CertificatePair } from "@nbfleet/agent";
import {
  AGENT_CONNECT_PATH,
  type AgentMessage,
  CloseCode,
  type CommandMessage,
  type CommandName,
  type CommandParamsOf,
  PROTOCOL_VERSION,
  type WelcomeMessage,
} from "@nbfleet/shared";
import { parseAgentFrame } from "@nbfleet/shared/frames";
import WebSocket, { WebSocketServer } from "ws";
import { Waiters } from "./waiters.js";

export interface FakeControllerOptions {
  /** Serve wss with this certificate; plain ws without. */
  tls?: CertificatePair;
  vmName?: string;
  reportIntervalSec?: number;
  /** The welcome's `features` (FEATURE_*); absent by default, as from an older controller. */
  features?: string[];
  /** Ping every open connection this often; never when null (the default). */
  pingIntervalMs?: number | null;
  /** Credentials accepted as they are. */
  credentials?: string[];
  /** Tokens each exchanged once, at the welcome, for a new credential. */
  bootstrapTokens?: string[];
  /** With no credentials and no bootstrap tokens configured, any bearer secret is accepted. */
  /** Served on GET at these paths (e.g. an agent artifact); everything else is 404. */
  files?: Record<string, Buffer>;
}

/** How a hello is answered: a welcome, nothing at all, or a close with a code. */
export type HelloAnswer = "welcome" | "silent" | { close: number; reason: string };

export interface AgentRecord<T extends AgentMessage = AgentMessage> {
  at: number;
  connection: number;
  message: T;
}

export interface ConnectionRecord {
  id: number;
  at: number;
  /** The bearer secret the agent presented. */
  bearer: string | null;
  /** How the bearer secret was taken; `refused` connections are closed with 4001 at once. */
  kind: "credential" | "bootstrap" | "any" | "refused";
  welcomedAt: number | null;
  closedAt: number | null;
  closeCode: number | null;
  closeReason: string;
  ws: WebSocket;
}

type MessageOf<T extends AgentMessage["type"]> = Extract<AgentMessage, { type: T }>;

export class FakeController {
  readonly messages: AgentRecord[] = [];
  readonly invalid: Array<{ at: number; connection: number; problem: string }> = [];
  readonly connections: ConnectionRecord[] = [];
  readonly sent: Array<{ at: number; connection: number; message: WelcomeMessage | CommandMessage }> = [];
  readonly issuedCredentials: string[] = [];
  /** TCP connections accepted: a client that refuses the certificate still made one. */
  dials = 0;
  /** How the next hellos are answered. */
  answerHello: HelloAnswer | ((connection: ConnectionRecord) => HelloAnswer) = "welcome";
  /** New connections get no pings and no answers at all. */
  silent = false;
  private readonly waiters = new Waiters();
  private readonly credentials: Set<string>;
  private readonly unusedBootstrap: Set<string>;
  private readonly openAuth: boolean;
  private readonly wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  private pinger: NodeJS.Timeout | undefined;

  private constructor(
    private readonly server: http.Server | https.Server,
    readonly url: string,
    private readonly options: FakeControllerOptions,
  ) {
    this.credentials = new Set(options.credentials ?? []);
    this.unusedBootstrap = new Set(options.bootstrapTokens ?? []);
    this.openAuth = this.credentials.size === 0 && this.unusedBootstrap.size === 0;
    server.on("upgrade", (request, socket, head) => this.upgrade(request, socket, head));
    if (options.pingIntervalMs) {
      this.pinger = setInterval(() => {
        for (const c of this.connections) {
          if (c.closedAt === null && !this.isSilent(c) && c.ws.readyState === WebSocket.OPEN) c.ws.ping();
        }
      }, options.pingIntervalMs);
    }
  }

  static async start(options: FakeControllerOptions = {}): Promise<FakeController> {
    const server = options.tls
      ? https.createServer({ cert: options.tls.certPem, key: options.tls.keyPem })
      : http.createServer();
    server.on("request", (request, response) => {
      const file = request.method === "GET" ? options.files?.[request.url ?? ""] : undefined;
      if (!file) response.writeHead(404).end();
      else response.writeHead(200, { "content-length": file.length }).end(file);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const fake = new FakeController(server, `${options.tls ? "https" : "http"}://127.0.0.1:${port}`, options);
    server.on("connection", () => {
      fake.dials++;
      fake.waiters.notify();
    });
    return fake;
  }

  get vmName(): string {
    return this.options.vmName ?? "vm-1";
  }

  /** The most recent welcomed connection that is still open. */
  current(): ConnectionRecord | undefined {
    return [...this.connections].reverse().find((c) => c.welcomedAt !== null && c.closedAt === null);
  }

  messagesOf<T extends AgentMessage["type"]>(type: T, connection?: number): Array<AgentRecord<MessageOf<T>>> {
    return this.messages.filter(
      (r): r is AgentRecord<MessageOf<T>> =>
        r.message.type === type && (connection === undefined || r.connection === connection),
    );
  }

  waitFor<T>(probe: () => T | undefined | null | false, what: string, timeoutMs = 10_000): Promise<T> {
    return this.waiters.until(probe, what, timeoutMs);
  }

  /** The first recorded message of `type` (after index `from`) that matches. */
  waitForMessage<T extends AgentMessage["type"]>(
    type: T,
    match: (message: MessageOf<T>, record: AgentRecord) => boolean = () => true,
    options: { from?: number; timeoutMs?: number } = {},
  ): Promise<AgentRecord<MessageOf<T>>> {
    const from = options.from ?? 0;
    return this.waitFor(
      () =>
        this.messages
          .slice(from)
          .find(
            (r): r is AgentRecord<MessageOf<T>> =>
              r.message.type === type && match(r.message as MessageOf<T>, r),
          ),
      `a ${type} message`,
      options.timeoutMs,
    );
  }

  /** Resolves once a connection has been welcomed (the n-th one, counting from 1). */
  waitForWelcomed(n = 1, timeoutMs?: number): Promise<ConnectionRecord> {
    return this.waitFor(
      () => this.connections.filter((c) => c.welcomedAt !== null)[n - 1],
      `welcomed connection #${n}`,
      timeoutMs,
    );
  }

  command<N extends CommandName>(
    name: N,
    params: CommandParamsOf<N>,
    id = `cmd-${randomUUID()}`,
  ): CommandMessage {
    return { v: PROTOCOL_VERSION, id, type: "command", name, params } as CommandMessage;
  }

  /** Sends on the current connection; throws when no agent is connected. */
  send(message: CommandMessage | Record<string, unknown>): void {
    const connection = this.current();
    if (!connection) throw new Error("fake controller: no agent is connected");
    connection.ws.send(JSON.stringify(message));
    this.sent.push({ at: Date.now(), connection: connection.id, message: message as CommandMessage });
  }

  /** Sends a command and resolves with the first result for its id that arrives after it. */
  async sendCommand(command: CommandMessage, timeoutMs?: number): Promise<AgentRecord<MessageOf<"result">>> {
    const from = this.messages.length;
    this.send(command);
    return this.waitForMessage("result", (m) => m.commandId === command.id, {
      from,
      ...(timeoutMs ? { timeoutMs } : {}),
    });
  }

  /** Sends a stream message (pty.*, logs.*) with a fresh envelope on the current connection. */
  sendStream(body: Record<string, unknown> & { type: string }): void {
    this.send({ v: PROTOCOL_VERSION, id: `msg-${randomUUID()}`, ...body });
  }

  /** Opens a terminal session; returns its id. */
  openPty(
    options: { session?: string; tty?: boolean; cols?: number; rows?: number; command?: string } = {},
  ): string {
    const session = options.session ?? `trm-${randomUUID()}`;
    this.sendStream({
      type: "pty.open",
      session,
      tty: options.tty ?? true,
      cols: options.cols ?? 80,
      rows: options.rows ?? 24,
      ...(options.command !== undefined ? { command: options.command } : {}),
    });
    return session;
  }

  ptyInput(session: string, data: string | Buffer, eof = false): void {
    this.sendStream({
      type: "pty.input",
      session,
      data: Buffer.from(data).toString("base64"),
      ...(eof ? { eof: true } : {}),
    });
  }

  /** Everything a session printed so far (one stream, or both interleaved). */
  ptyOutput(session: string, stream?: "stdout" | "stderr"): string {
    return Buffer.concat(
      this.messagesOf("pty.output")
        .filter((r) => r.message.session === session && (stream === undefined || r.message.stream === stream))
        .map((r) => Buffer.from(r.message.data, "base64")),
    ).toString("utf8");
  }

  /** Resolves once the session's output (from character `from` on) matches. */
  waitForPtyOutput(
    session: string,
    match: RegExp,
    options: { from?: number; timeoutMs?: number } = {},
  ): Promise<string> {
    return this.waitFor(
      () => {
        const text = this.ptyOutput(session).slice(options.from ?? 0);
        return match.test(text) ? text : undefined;
      },
      `terminal output matching ${match}`,
      options.timeoutMs,
    );
  }

  waitForPtyExit(session: string, timeoutMs?: number): Promise<AgentRecord<MessageOf<"pty.exit">>> {
    return this.waitForMessage("pty.exit", (m) => m.session === session, timeoutMs ? { timeoutMs } : {});
  }

  /** Every line a log stream delivered so far. */
  logLines(stream: string): string[] {
    return this.messagesOf("logs.data")
      .filter((r) => r.message.stream === stream)
      .flatMap((r) => r.message.lines);
  }

  closeCurrent(code: number, reason = ""): void {
    this.current()?.ws.close(code, reason);
  }

  /** Ends the current connection without a close handshake, like a crashed controller. */
  dropCurrent(): void {
    this.current()?.ws.terminate();
  }

  waitForClosed(connection: ConnectionRecord, timeoutMs?: number): Promise<ConnectionRecord> {
    return this.waitFor(
      () => (connection.closedAt !== null ? connection : undefined),
      `connection #${connection.id} to close`,
      timeoutMs,
    );
  }

  async close(): Promise<void> {
    clearInterval(this.pinger);
    for (const c of this.connections) c.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private isSilent(connection: ConnectionRecord & { silent?: boolean }): boolean {
    return connection.silent === true;
  }

  private upgrade(request: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    if (new URL(request.url ?? "/", "http://fake").pathname !== AGENT_CONNECT_PATH) {
      socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n");
      return;
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => this.accept(ws, request));
  }

  private accept(ws: WebSocket, request: http.IncomingMessage): void {
    const bearer = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? "")?.[1] ?? null;
    const kind = this.openAuth
      ? "any"
      : bearer && this.credentials.has(bearer)
        ? "credential"
        : bearer && this.unusedBootstrap.has(bearer)
          ? "bootstrap"
          : null;
    const connection: ConnectionRecord & { silent: boolean } = {
      id: this.connections.length + 1,
      at: Date.now(),
      bearer,
      kind: kind ?? "refused",
      welcomedAt: null,
      closedAt: null,
      closeCode: null,
      closeReason: "",
      ws,
      silent: this.silent,
    };
    this.connections.push(connection);
    ws.on("close", (code, reason) => {
      connection.closedAt = Date.now();
      connection.closeCode = code;
      connection.closeReason = reason.toString();
      this.waiters.notify();
    });
    ws.on("error", () => {
      // The close event carries what matters.
    });
    ws.on("message", (data, isBinary) => this.receive(connection, data as Buffer, isBinary));
    this.waiters.notify();
    if (kind === null) {
      ws.close(
        CloseCode.unauthorized,
        bearer?.startsWith("nbfb_")
          ? "unknown or already used bootstrap token"
          : "unknown or revoked agent credential",
      );
    }
  }

  private receive(connection: ConnectionRecord & { silent: boolean }, data: Buffer, isBinary: boolean): void {
    // Checked as the controller's gateway checks it, and refused with the same close.
    const parsed = parseAgentFrame(data, isBinary);
    if (!parsed.ok) {
      this.invalid.push({ at: Date.now(), connection: connection.id, problem: parsed.reason });
      this.waiters.notify();
      connection.ws.close(parsed.code, parsed.reason.slice(0, 120));
      return;
    }
    const { message } = parsed;
    this.messages.push({ at: Date.now(), connection: connection.id, message });
    if (message.type === "hello") this.onHello(connection);
    this.waiters.notify();
  }

  private onHello(connection: ConnectionRecord & { silent: boolean }): void {
    if (connection.silent || connection.kind === "refused") return;
    const answer = typeof this.answerHello === "function" ? this.answerHello(connection) : this.answerHello;
    if (answer === "silent") return;
    if (answer !== "welcome") {
      connection.ws.close(answer.close, answer.reason);
      return;
    }
    let credential: string | undefined;
    if (connection.kind === "bootstrap") {
      if (!this.unusedBootstrap.delete(connection.bearer!)) {
        connection.ws.close(CloseCode.unauthorized, "bootstrap token already used");
        return;
      }
      credential = `nbfa_${randomBytes(24).toString("base64url")}`;
      this.credentials.add(credential);
      this.issuedCredentials.push(credential);
    }
    for (const other of this.connections) {
      if (other !== connection && other.welcomedAt !== null && other.closedAt === null) {
        other.ws.close(CloseCode.replaced, "replaced by a newer connection of the same VM");
      }
    }
    connection.welcomedAt = Date.now();
    const welcome: WelcomeMessage = {
      v: PROTOCOL_VERSION,
      id: `msg-${randomUUID()}`,
      type: "welcome",
      vmName: this.vmName,
      reportIntervalSec: this.options.reportIntervalSec ?? 15,
      ...(credential ? { credential } : {}),
      ...(this.options.features ? { features: this.options.features } : {}),
    };
    connection.ws.send(JSON.stringify(welcome));
    this.sent.push({ at: Date.now(), connection: connection.id, message: welcome });
  }
}
