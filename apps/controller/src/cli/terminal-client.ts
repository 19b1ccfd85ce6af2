/**
 * A client of `GET /v1/vms/{name}/shell`: dials the WebSocket with the bearer token, turns an
 * HTTP refusal before the upgrade into a CliError with the API's code and message, and speaks
 * the terminal framing (binary `<channel><bytes>`, JSON control frames) for the CLI and tests.
 */
import type { IncomingMessage } from "node:http";
import {
  type ApiError,
  TerminalChannel,
  type TerminalClientFrame,
  TerminalServerFrame,
  compileValidator,
} from "@nbfleet/shared";
import WebSocket from "ws";
import { CliError, ExitCode } from "./client.js";

const serverFrame = compileValidator(TerminalServerFrame, "terminal frame");

export interface TerminalOpenOptions {
  baseUrl: string;
  token: string | undefined;
  vm: string;
  cols?: number;
  rows?: number;
  /** Attach again to this session. */
  session?: string;
  /** Run this (with the remote user's shell) instead of a login shell. */
  command?: string;
  /** Default: a tty for a shell, pipes for a command. */
  tty?: boolean;
}

export interface TerminalHandlers {
  output(channel: "stdout" | "stderr", data: Buffer): void;
  /** Any control frame: session (first), exit, error. */
  control?(frame: TerminalServerFrame): void;
  closed(code: number, reason: string): void;
}

export type SessionFrame = Extract<TerminalServerFrame, { type: "session" }>;

export class TerminalConnection {
  private constructor(
    private readonly ws: WebSocket,
    readonly session: SessionFrame,
  ) {}

  /** Resolves once the session frame arrived (the process runs on the guest by then). */
  static open(options: TerminalOpenOptions, handlers: TerminalHandlers): Promise<TerminalConnection> {
    const query = new URLSearchParams();
    if (options.cols) query.set("cols", String(options.cols));
    if (options.rows) query.set("rows", String(options.rows));
    if (options.session) query.set("session", options.session);
    if (options.command !== undefined) query.set("command", options.command);
    if (options.tty !== undefined) query.set("tty", options.tty ? "1" : "0");
    const url = `${options.baseUrl.replace(/^http/, "ws")}/v1/vms/${encodeURIComponent(options.vm)}/shell?${query}`;
    const ws = new WebSocket(url, {
      headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
      perMessageDeflate: false,
      maxPayload: 64 * 1024 * 1024,
    });
    return new Promise((resolve, reject) => {
      let connection: TerminalConnection | null = null;
      let refused = false;
      ws.on("unexpected-response", (_request, response) => {
        refused = true;
        const socket = response.socket;
        void refusal(response).then((error) => {
          reject(error);
          // Not back into a keep-alive pool: this connection was asked to upgrade.
          socket?.destroy();
          ws.terminate();
        });
      });
      ws.on("error", (error) => {
        if (refused || connection) return;
        const cause = (error as { code?: string }).code ?? error.message;
        reject(
          new CliError(
            "NBF_CONTROLLER_UNREACHABLE",
            `cannot reach the controller at ${options.baseUrl} (${cause}); is it running? (pnpm start, or set NBFLEET_URL)`,
            ExitCode.failure,
          ),
        );
      });
      ws.on("message", (data, isBinary) => {
        const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as Buffer);
        if (isBinary) {
          const channel = bytes[0] === TerminalChannel.stderr ? "stderr" : "stdout";
          handlers.output(channel, bytes.subarray(1));
          return;
        }
        let frame: unknown;
        try {
          frame = JSON.parse(bytes.toString("utf8"));
        } catch {
          return;
        }
        if (!serverFrame.is(frame)) return;
        if (frame.type === "session" && !connection) {
          connection = new TerminalConnection(ws, frame);
          resolve(connection);
        }
        handlers.control?.(frame);
      });
      ws.on("close", (code, reason) => {
        if (!connection && !refused) {
          reject(
            new CliError(
              "NBF_TERMINAL_CLOSED",
              `the controller closed the terminal before it started (${code} ${reason.toString()})`,
              ExitCode.failure,
            ),
          );
        }
        handlers.closed(code, reason.toString());
      });
    });
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Sends bytes to the process's input. */
  input(data: Buffer | string): void {
    const bytes = typeof data === "string" ? Buffer.from(data) : data;
    const frame = Buffer.allocUnsafe(bytes.length + 1);
    frame[0] = TerminalChannel.stdin;
    bytes.copy(frame, 1);
    this.sendRaw(frame);
  }

  resize(cols: number, rows: number): void {
    this.control({ type: "resize", cols, rows });
  }

  /** Closes the process's stdin (sessions without a tty). */
  eof(): void {
    this.control({ type: "eof" });
  }

  /** Ends the session: the process is killed; an exit frame follows. */
  end(): void {
    this.control({ type: "close" });
  }

  /** Leaves the session running on the guest; attach again with its id. */
  detach(): void {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.close(1000, "detached");
    }
  }

  /** Drops the connection without a close handshake (as a network failure would). */
  drop(): void {
    this.ws.terminate();
  }

  private control(frame: TerminalClientFrame): void {
    this.sendRaw(JSON.stringify(frame));
  }

  private sendRaw(data: Buffer | string): void {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(data);
  }
}

async function refusal(response: IncomingMessage): Promise<CliError> {
  const chunks: Buffer[] = [];
  for await (const chunk of response) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8");
  let parsed: ApiError | undefined;
  try {
    parsed = JSON.parse(text) as ApiError;
  } catch {
    parsed = undefined;
  }
  const status = response.statusCode ?? 0;
  const exit =
    status === 404
      ? ExitCode.notFound
      : status === 400 || status === 409
        ? ExitCode.usage
        : status === 504
          ? ExitCode.timeout
          : ExitCode.failure;
  return new CliError(
    parsed?.error?.code ?? `HTTP_${status}`,
    parsed?.error?.message ?? (text || `HTTP ${status}`),
    exit,
  );
}
