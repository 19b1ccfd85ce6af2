/**
 * The streams an agent serves its controller, behind the link's LinkStreams seam: terminal
 * sessions (PtyHost) and log tails/follows of the notebook's and the agent's own log. Each log
 * stream is a followLog with an abort signal; all of them end when the connection ends.
 */
import {
  CAPABILITY_LOGS_FOLLOW,
  CAPABILITY_PTY,
  type ControllerStreamMessage,
  type LogSource,
  type LogsOpenMessage,
} from "@nbfleet/shared";
import type { Static } from "@sinclair/typebox";
import type { LinkStreams, StreamOut } from "../link/streams.js";
import { PtyHost, type PtyHostOptions } from "../pty/pty-host.js";
import { followLog } from "../supervisor/log-follow.js";

export interface AgentStreamsOptions extends PtyHostOptions {
  logFile: (source: LogSource) => string;
  /** Applied to every log line before it is sent. */
  redact?: (line: string) => string;
  maxLogStreams?: number;
  logPollMs?: number;
}

export class AgentStreams implements LinkStreams {
  readonly capabilities = [CAPABILITY_PTY, CAPABILITY_LOGS_FOLLOW] as const;
  readonly pty: PtyHost;
  private readonly logs = new Map<string, AbortController>();
  private readonly maxLogStreams: number;

  constructor(private readonly options: AgentStreamsOptions) {
    this.pty = new PtyHost(options);
    this.maxLogStreams = options.maxLogStreams ?? 16;
  }

  get logStreams(): number {
    return this.logs.size;
  }

  handle(message: ControllerStreamMessage, out: StreamOut): void {
    switch (message.type) {
      case "pty.open":
        this.pty.open(message, out);
        break;
      case "pty.input":
        this.pty.input(message);
        break;
      case "pty.resize":
        this.pty.resize(message);
        break;
      case "pty.flow":
        this.pty.flow(message);
        break;
      case "pty.close":
        this.pty.close(message);
        break;
      case "logs.open":
        this.openLog(message, out);
        break;
      case "logs.close":
        this.logs.get(message.stream)?.abort();
        this.logs.delete(message.stream);
        break;
    }
  }

  disconnected(): void {
    this.pty.closeAll();
    for (const abort of this.logs.values()) abort.abort();
    this.logs.clear();
  }

  private openLog(message: Static<typeof LogsOpenMessage>, out: StreamOut): void {
    const { stream } = message;
    const refuse = (code: string, text: string) =>
      out.send({ type: "logs.end", stream, error: { code, message: text } });
    if (this.logs.has(stream)) return void refuse("NBF_INVALID_INPUT", `log stream ${stream} already exists`);
    if (this.logs.size >= this.maxLogStreams) {
      return void refuse(
        "NBF_STREAM_LIMIT",
        `this agent already serves ${this.logs.size} log streams (at most ${this.maxLogStreams})`,
      );
    }
    const abort = new AbortController();
    this.logs.set(stream, abort);
    followLog(this.options.logFile(message.source), {
      lines: message.lines,
      follow: message.follow,
      signal: abort.signal,
      ...(this.options.redact ? { transform: this.options.redact } : {}),
      ...(this.options.logPollMs ? { pollMs: this.options.logPollMs } : {}),
      onLines: (lines) => {
        if (!out.send({ type: "logs.data", stream, lines })) abort.abort();
      },
    }).then(
      () => {
        if (this.logs.get(stream) !== abort) return;
        this.logs.delete(stream);
        if (!abort.signal.aborted) out.send({ type: "logs.end", stream });
      },
      (error: unknown) => {
        if (this.logs.get(stream) === abort) this.logs.delete(stream);
        refuse("NBF_INTERNAL", `reading the ${message.source} log failed: ${(error as Error).message}`);
      },
    );
  }
}
