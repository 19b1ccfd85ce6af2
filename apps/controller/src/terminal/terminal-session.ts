/**
 * One terminal session as the controller holds it: the process on the guest (reached through
 * the agent with `pty.*` messages), at most one attached client, the last 64 KiB of output for
 * whoever attaches next, and the timers that end a session nobody uses. Its state only moves
 * forward:
 *
 *   opening ──pty.opened──▶ open ──pty.exit / agent gone / idle / detached / close──▶ ended
 *      └──────────── pty.exit with an error, agent gone, no answer ──────────────────▶ ended
 *
 * Closing the client socket only detaches; the session goes on until the detached timeout. A
 * client left with more than MAX_UNSENT_BYTES of output unread (its agent not pausing) is
 * detached the same way. Client input reaches the agent as fast as the agent's connection
 * drains and the process reads it (`pty.inputFlow` from the agent; input-flow.ts).
 */
import {
  PTY_CHUNK_BYTES,
  TerminalChannel,
  TerminalCloseCode,
  type TerminalServerFrame,
} from "@nbfleet/shared";
import WebSocket from "ws";
import { closeWithin } from "../gateway/socket-close.js";
import { MAX_UNSENT_BYTES } from "../stream-limits.js";
import { controlMessage, outputFrame, parseClientFrame } from "./client-frames.js";
import { InputFlow, type InputMessage } from "./input-flow.js";
import { ReplayBuffer } from "./replay-buffer.js";

export type EndReason =
  | "exited"
  | "closed"
  | "idle"
  | "detached"
  | "agent_gone"
  | "open_failed"
  | "controller_stopped"
  | "revoked";

export interface SessionInit {
  id: string;
  vmName: string;
  owner: { id: string; name: string };
  tty: boolean;
  command: string | null;
  cols: number;
  rows: number;
}

export interface SessionHooks {
  /** Sends a stream message for this session to the agent (envelope added); false when it cannot. */
  toAgent(body: Record<string, unknown> & { type: string }): boolean;
  /** Bytes not yet written to the agent's connection (every stream of the VM shares it). */
  agentBacklog(): number;
  ended(session: TerminalSession): void;
}

export interface SessionTiming {
  idleMs: number;
  detachedMs: number;
}

type Final = { frame: TerminalServerFrame; code: number };

/** Client bytes queued above which the agent is asked to stop reading the process... */
const CLIENT_HIGH_WATER = 1024 * 1024;
/** ...and below which it reads again. */
const CLIENT_LOW_WATER = 256 * 1024;

export class TerminalSession {
  readonly id: string;
  readonly vmName: string;
  readonly owner: { id: string; name: string };
  readonly tty: boolean;
  readonly command: string | null;
  readonly openedAtMs = Date.now();
  state: "opening" | "open" | "ended" = "opening";
  pid: number | null = null;
  bytesIn = 0;
  bytesOut = 0;
  attaches = 0;
  exit: { exitCode: number | null; signal: string | null } | null = null;
  endReason: EndReason | null = null;
  endedAtMs: number | null = null;
  /** Whether a client was attached when the session ended (and so saw how). */
  endSeen = false;
  /** Settles once the agent answered the open (rejects with the reason it did not start). */
  readonly opened: Promise<void>;
  private settleOpen!: { resolve: () => void; reject: (error: Error) => void };
  private final: Final | null = null;
  private client: WebSocket | null = null;
  private readonly replay = new ReplayBuffer();
  private readonly input: InputFlow;
  private cols: number;
  private rows: number;
  private closeRequested = false;
  private pausedForClient = false;
  private flowTimer: NodeJS.Timeout | undefined;
  private readonly idleTimer: NodeJS.Timeout;
  private detachedTimer: NodeJS.Timeout | undefined;

  constructor(
    init: SessionInit,
    private readonly hooks: SessionHooks,
    private readonly timing: SessionTiming,
  ) {
    this.id = init.id;
    this.vmName = init.vmName;
    this.owner = init.owner;
    this.tty = init.tty;
    this.command = init.command;
    this.cols = init.cols;
    this.rows = init.rows;
    this.opened = new Promise<void>((resolve, reject) => {
      this.settleOpen = { resolve, reject };
    });
    this.opened.catch(() => undefined);
    this.input = new InputFlow(
      (message) => hooks.toAgent(message),
      () => hooks.agentBacklog(),
    );
    this.idleTimer = setTimeout(() => this.onIdle(), timing.idleMs);
    this.idleTimer.unref();
    this.armDetached();
  }

  get attached(): boolean {
    return this.client !== null;
  }

  get kind(): "shell" | "exec" {
    return this.command === null ? "shell" : "exec";
  }

  // ---- from the agent ------------------------------------------------------------------

  onOpened(pid: number): void {
    if (this.state !== "opening") return;
    this.state = "open";
    this.pid = pid;
    this.settleOpen.resolve();
  }

  onOutput(data: Buffer, stream: "stdout" | "stderr"): void {
    if (this.state === "ended") return;
    if (this.state === "opening") this.onOpened(0);
    const channel = stream === "stderr" ? TerminalChannel.stderr : TerminalChannel.stdout;
    this.bytesOut += data.length;
    this.idleTimer.refresh();
    this.replay.push(channel, data);
    const client = this.client;
    if (!client || client.readyState !== WebSocket.OPEN) return;
    client.send(outputFrame(channel, data));
    // An agent that goes on sending after pty.flow paused would fill this client's buffer.
    if (client.bufferedAmount > MAX_UNSENT_BYTES) this.detachSlowClient(client);
    else if (!this.pausedForClient && client.bufferedAmount > CLIENT_HIGH_WATER) this.pauseForClient();
  }

  /** The agent asks to hold input (the process has not read enough of it), or for more. */
  onInputFlow(paused: boolean): void {
    if (this.state === "ended") return;
    this.input.agentFlow(paused, this.client);
  }

  onExit(exitCode: number | null, signal: string | null, error?: { code: string; message: string }): void {
    if (this.state === "ended") return;
    if (error) {
      const opening = this.state === "opening";
      this.settleOpen.reject(Object.assign(new Error(error.message), { code: error.code }));
      this.end(opening ? "open_failed" : "exited", {
        frame: { type: "error", code: error.code, message: error.message },
        code: TerminalCloseCode.openFailed,
      });
      return;
    }
    if (this.state === "opening") this.onOpened(0);
    this.exit = { exitCode, signal };
    this.end(this.closeRequested ? "closed" : "exited", {
      frame: { type: "exit", exitCode, signal },
      code: TerminalCloseCode.exited,
    });
  }

  agentGone(reason: string): void {
    if (this.state === "ended") return;
    const message = `${reason}; the terminal session ended with the agent's connection`;
    this.settleOpen.reject(Object.assign(new Error(message), { code: "NBF_AGENT_NOT_CONNECTED" }));
    this.end("agent_gone", {
      frame: { type: "error", code: "NBF_AGENT_NOT_CONNECTED", message },
      code: TerminalCloseCode.agentGone,
    });
  }

  // ---- from the controller -------------------------------------------------------------

  /** Ends the session for a reason of the controller's own (the process is killed). */
  stop(reason: EndReason, code: string, message: string, closeCode: number): void {
    if (this.state === "ended") return;
    this.hooks.toAgent({ type: "pty.close", session: this.id });
    this.settleOpen.reject(Object.assign(new Error(message), { code }));
    this.end(reason, { frame: { type: "error", code, message }, code: closeCode });
  }

  // ---- the client ----------------------------------------------------------------------

  /** Attaches a client (a second one takes over): session frame, replay, then live output. */
  attach(ws: WebSocket, size?: { cols: number; rows: number }): void {
    const previous = this.client;
    if (previous) {
      this.client = null;
      sendIfOpen(
        previous,
        controlMessage({
          type: "error",
          code: "NBF_TERMINAL_TAKEN_OVER",
          message: `another client attached to terminal session ${this.id}; this one is detached`,
        }),
      );
      closeWithin(previous, TerminalCloseCode.takenOver, "another client attached");
    }
    this.attaches++;
    const replay = this.replay.snapshot();
    ws.send(
      controlMessage({
        type: "session",
        session: this.id,
        vm: this.vmName,
        tty: this.tty,
        reattached: this.attaches > 1,
        replayedBytes: this.replay.size,
      }),
    );
    for (const frame of replay) ws.send(outputFrame(frame.channel, frame.data));
    if (this.state === "ended") {
      if (this.final) ws.send(controlMessage(this.final.frame));
      closeWithin(ws, this.final?.code ?? TerminalCloseCode.ended, "session ended");
      return;
    }
    this.client = ws;
    clearTimeout(this.detachedTimer);
    this.detachedTimer = undefined;
    if (size && this.tty && (size.cols !== this.cols || size.rows !== this.rows))
      this.resize(size.cols, size.rows);
    ws.on("message", (data, isBinary) => this.fromClient(ws, data, isBinary));
    ws.on("close", () => this.detach(ws));
  }

  private fromClient(ws: WebSocket, raw: WebSocket.RawData, isBinary: boolean): void {
    if (this.client !== ws || this.state === "ended") return;
    const input = parseClientFrame(raw, isBinary);
    if (input.kind === "invalid") {
      sendIfOpen(ws, controlMessage({ type: "error", code: "NBF_INVALID_FRAME", message: input.reason }));
      closeWithin(ws, TerminalCloseCode.invalidFrame, "invalid frame");
      return;
    }
    this.idleTimer.refresh();
    if (input.kind === "stdin") {
      this.bytesIn += input.data.length;
      const messages: InputMessage[] = [];
      for (let at = 0; at < input.data.length; at += PTY_CHUNK_BYTES) {
        const chunk = input.data.subarray(at, at + PTY_CHUNK_BYTES);
        messages.push({ type: "pty.input", session: this.id, data: chunk.toString("base64") });
      }
      this.input.send(ws, messages);
      return;
    }
    const { frame } = input;
    if (frame.type === "resize") this.resize(frame.cols, frame.rows);
    else if (frame.type === "eof")
      this.input.send(ws, [{ type: "pty.input", session: this.id, data: "", eof: true }]);
    else {
      this.closeRequested = true;
      this.hooks.toAgent({ type: "pty.close", session: this.id });
    }
  }

  private resize(cols: number, rows: number): void {
    this.cols = cols;
    this.rows = rows;
    this.hooks.toAgent({ type: "pty.resize", session: this.id, cols, rows });
  }

  private detach(ws: WebSocket): void {
    if (this.client !== ws) return;
    this.client = null;
    if (this.pausedForClient) this.resumeForClient();
    if (this.state !== "ended") this.armDetached();
  }

  private detachSlowClient(ws: WebSocket): void {
    const unsent = Math.round(ws.bufferedAmount / (1024 * 1024));
    sendIfOpen(
      ws,
      controlMessage({
        type: "error",
        code: "NBF_TERMINAL_CLIENT_TOO_SLOW",
        message: `the client left ${unsent} MiB of output unread; it was detached from terminal session ${this.id}, which goes on (attach again to continue)`,
      }),
    );
    closeWithin(ws, TerminalCloseCode.slowClient, "client not reading its output");
    this.detach(ws);
  }

  // ---- timers, flow and the end ------------------------------------------------------------

  private armDetached(): void {
    clearTimeout(this.detachedTimer);
    this.detachedTimer = setTimeout(() => {
      this.stop(
        "detached",
        "NBF_TERMINAL_DETACHED",
        `no client attached to terminal session ${this.id} for ${seconds(this.timing.detachedMs)}`,
        TerminalCloseCode.ended,
      );
    }, this.timing.detachedMs);
    this.detachedTimer.unref();
  }

  private onIdle(): void {
    this.stop(
      "idle",
      "NBF_TERMINAL_IDLE",
      `no input and no output for ${seconds(this.timing.idleMs)}; the terminal session was ended`,
      TerminalCloseCode.idle,
    );
  }

  private pauseForClient(): void {
    this.pausedForClient = true;
    this.hooks.toAgent({ type: "pty.flow", session: this.id, paused: true });
    this.flowTimer = setInterval(() => {
      if (this.client && this.client.bufferedAmount > CLIENT_LOW_WATER) return;
      this.resumeForClient();
    }, 20);
    this.flowTimer.unref();
  }

  private resumeForClient(): void {
    clearInterval(this.flowTimer);
    this.flowTimer = undefined;
    this.pausedForClient = false;
    if (this.state !== "ended") this.hooks.toAgent({ type: "pty.flow", session: this.id, paused: false });
  }

  private end(reason: EndReason, final: Final): void {
    if (this.state === "ended") return;
    this.state = "ended";
    this.endReason = reason;
    this.endedAtMs = Date.now();
    this.final = final;
    clearTimeout(this.idleTimer);
    clearTimeout(this.detachedTimer);
    clearInterval(this.flowTimer);
    this.input.stop();
    const client = this.client;
    this.client = null;
    this.endSeen = client !== null;
    if (client) {
      sendIfOpen(client, controlMessage(final.frame));
      closeWithin(client, final.code, reason);
    }
    this.hooks.ended(this);
  }
}

function sendIfOpen(ws: WebSocket, data: string | Buffer): void {
  if (ws.readyState === WebSocket.OPEN) ws.send(data);
}

function seconds(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 100) / 10} s` : `${ms} ms`;
}
