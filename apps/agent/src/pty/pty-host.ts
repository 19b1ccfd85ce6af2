/**
 * The agent's terminal sessions: `pty.open` starts a process (a login shell or a command, in a
 * pseudo-terminal or on pipes) as the notebook's user; `pty.input|resize|flow|close` act on it;
 * its output goes back as `pty.output` and its end as one `pty.exit`. A session's state only
 * moves forward: opening → running → exited. Messages for a session that is still opening
 * wait for it, in order. Input the process has not read is held up to a cap per session; past
 * it the session ends with NBF_STREAM_LIMIT rather than fill the agent's memory.
 */
import {
  PTY_CHUNK_BYTES,
  type PtyCloseMessage,
  type PtyFlowMessage,
  type PtyInputMessage,
  type PtyOpenMessage,
  type PtyResizeMessage,
} from "@nbfleet/shared";
import type { Static } from "@sinclair/typebox";
import { AgentError, errorCode } from "../errors.js";
import type { StreamOut } from "../link/streams.js";
import { type NodePty, loadNodePty } from "./node-pty.js";
import { type ProcessExit, type ProcessSession, spawnPiped, spawnTty } from "./process-session.js";
import { type TerminalTarget, sessionLaunch } from "./shell.js";

type Open = Static<typeof PtyOpenMessage>;
type Input = Static<typeof PtyInputMessage>;
type Resize = Static<typeof PtyResizeMessage>;
type Flow = Static<typeof PtyFlowMessage>;
type Close = Static<typeof PtyCloseMessage>;

export interface PtyHostOptions {
  /** Who sessions run as; asked at every open (the notebook's user is known only after `up`). */
  target: () => TerminalTarget;
  maxSessions?: number;
  /** Between SIGHUP and SIGKILL when a session is closed. */
  killGraceMs?: number;
  /** Outgoing bytes queued on the connection above which every session stops being read... */
  highWaterBytes?: number;
  /** ...and below which reading resumes. */
  lowWaterBytes?: number;
  /** Input a session may hold that its process has not read yet; past it the session ends. */
  maxQueuedInputBytes?: number;
  loadPty?: () => Promise<NodePty>;
}

interface Entry {
  id: string;
  out: StreamOut;
  state: "opening" | "running" | "exited";
  /** Resolves with the process once started (null if it never did); operations chain on it. */
  ready: Promise<ProcessSession | null>;
  /** Set once running, to ask how much input it holds. */
  process: ProcessSession | null;
  /** Input received but not yet given to the process (it was still opening). */
  inputNotGiven: number;
  pausedByController: boolean;
}

export class PtyHost {
  private readonly sessions = new Map<string, Entry>();
  private readonly maxSessions: number;
  private readonly killGraceMs: number;
  private readonly highWater: number;
  private readonly lowWater: number;
  private readonly maxQueuedInput: number;
  private linkPaused = false;
  private pressureTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: PtyHostOptions) {
    this.maxSessions = options.maxSessions ?? 16;
    this.killGraceMs = options.killGraceMs ?? 2000;
    this.highWater = options.highWaterBytes ?? 1024 * 1024;
    this.lowWater = options.lowWaterBytes ?? 256 * 1024;
    this.maxQueuedInput = options.maxQueuedInputBytes ?? 1024 * 1024;
  }

  get size(): number {
    return this.sessions.size;
  }

  open(message: Open, out: StreamOut): void {
    const id = message.session;
    if (this.sessions.has(id)) {
      out.send(exitMessage(id, null, error("NBF_INVALID_INPUT", `terminal session ${id} already exists`)));
      return;
    }
    if (this.sessions.size >= this.maxSessions) {
      out.send(
        exitMessage(
          id,
          null,
          error(
            "NBF_STREAM_LIMIT",
            `this agent already runs ${this.sessions.size} terminal sessions (at most ${this.maxSessions})`,
          ),
        ),
      );
      return;
    }
    const entry: Entry = {
      id,
      out,
      state: "opening",
      ready: Promise.resolve(null),
      process: null,
      inputNotGiven: 0,
      pausedByController: false,
    };
    this.sessions.set(id, entry);
    entry.ready = this.start(entry, message).then(
      (process) => {
        if (entry.state === "exited") {
          process.kill(this.killGraceMs);
          return null;
        }
        entry.state = "running";
        entry.process = process;
        out.send({ type: "pty.opened", session: id, pid: process.pid });
        if (this.linkPaused) process.setPaused(true);
        return process;
      },
      (failure: unknown) => {
        this.finish(entry, null, {
          code: failure instanceof AgentError ? failure.code : "NBF_PTY_SPAWN_FAILED",
          message: `could not start the ${message.command === undefined ? "login shell" : "command"}: ${
            failure instanceof Error ? failure.message : String(failure)
          }`,
        });
        return null;
      },
    );
  }

  input(message: Input): void {
    const entry = this.sessions.get(message.session);
    if (!entry) return;
    const data = Buffer.from(message.data, "base64");
    const queued = entry.inputNotGiven + (entry.process?.queuedInput() ?? 0) + data.length;
    if (queued > this.maxQueuedInput) {
      this.endUnread(entry, queued);
      return;
    }
    entry.inputNotGiven += data.length;
    this.with(entry.id, (process) => {
      entry.inputNotGiven -= data.length;
      if (data.length > 0) process.write(data);
      if (message.eof) process.endInput();
    });
  }

  resize(message: Resize): void {
    this.with(message.session, (process) => process.resize(message.cols, message.rows));
  }

  flow(message: Flow): void {
    const entry = this.sessions.get(message.session);
    if (!entry) return;
    entry.pausedByController = message.paused;
    this.with(message.session, (process) => process.setPaused(message.paused || this.linkPaused));
  }

  close(message: Close): void {
    this.with(message.session, (process) => process.kill(this.killGraceMs));
  }

  /** The connection is gone: every session ends (nobody could read it or reattach to it). */
  closeAll(): void {
    clearInterval(this.pressureTimer);
    this.pressureTimer = undefined;
    this.linkPaused = false;
    for (const entry of [...this.sessions.values()]) {
      this.sessions.delete(entry.id);
      const wasOpening = entry.state === "opening";
      entry.state = "exited";
      if (!wasOpening) void entry.ready.then((process) => process?.kill(this.killGraceMs));
    }
  }

  private async start(entry: Entry, message: Open): Promise<ProcessSession> {
    const launch = await sessionLaunch(this.options.target());
    const request = { launch, command: message.command, cols: message.cols, rows: message.rows };
    const events = {
      onOutput: (data: Buffer, stream: "stdout" | "stderr") => this.output(entry, data, stream),
      onExit: (exit: ProcessExit) => this.finish(entry, exit),
    };
    if (!message.tty) return spawnPiped(request, events);
    const pty = await (this.options.loadPty ? this.options.loadPty() : loadNodePty());
    return spawnTty(pty, request, events);
  }

  private with(id: string, act: (process: ProcessSession) => void): void {
    const entry = this.sessions.get(id);
    if (!entry) return;
    entry.ready = entry.ready.then((process) => {
      if (process && entry.state === "running") act(process);
      return process;
    });
  }

  private output(entry: Entry, data: Buffer, stream: "stdout" | "stderr"): void {
    if (entry.state === "exited") return;
    for (let at = 0; at < data.length; at += PTY_CHUNK_BYTES) {
      const chunk = data.subarray(at, at + PTY_CHUNK_BYTES);
      entry.out.send({ type: "pty.output", session: entry.id, data: chunk.toString("base64"), stream });
    }
    if (!this.linkPaused && entry.out.backlog() > this.highWater) this.pauseForLink(entry.out);
  }

  /** The process does not read its input as fast as it comes: the session ends instead of holding it. */
  private endUnread(entry: Entry, queued: number): void {
    this.finish(
      entry,
      null,
      error(
        "NBF_STREAM_LIMIT",
        `terminal session ${entry.id} was ended: its process has not read ${queued} bytes of input sent to it (at most ${this.maxQueuedInput} are held for it)`,
      ),
    );
    void entry.ready.then((process) => process?.kill(this.killGraceMs));
  }

  private finish(entry: Entry, exit: ProcessExit | null, failure?: { code: string; message: string }): void {
    if (this.sessions.get(entry.id) !== entry) return;
    this.sessions.delete(entry.id);
    entry.state = "exited";
    entry.out.send(exitMessage(entry.id, exit, failure));
  }

  /** The connection is not draining: stop reading every session until it does. */
  private pauseForLink(out: StreamOut): void {
    this.linkPaused = true;
    this.setAllPaused();
    this.pressureTimer = setInterval(() => {
      if (out.backlog() > this.lowWater) return;
      clearInterval(this.pressureTimer);
      this.pressureTimer = undefined;
      this.linkPaused = false;
      this.setAllPaused();
    }, 10);
    this.pressureTimer.unref();
  }

  private setAllPaused(): void {
    for (const entry of this.sessions.values()) {
      this.with(entry.id, (process) => process.setPaused(this.linkPaused || entry.pausedByController));
    }
  }
}

function error(code: string, message: string): { code: string; message: string } {
  return { code, message };
}

function exitMessage(
  session: string,
  exit: ProcessExit | null,
  failure?: { code: string; message: string },
): Record<string, unknown> {
  return {
    type: "pty.exit",
    session,
    exitCode: exit?.exitCode ?? null,
    signal: exit?.signal ?? null,
    ...(failure ? { error: { code: codeOf(failure.code), message: failure.message.slice(0, 4000) } } : {}),
  };
}

function codeOf(code: string): string {
  return /^NBF_[A-Z0-9_]+$/.test(code) ? code : errorCode(null);
}
