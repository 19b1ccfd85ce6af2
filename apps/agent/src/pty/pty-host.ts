/**
 * The agent's terminal sessions: `pty.open` starts a process (a login shell or a command, in a
 * pseudo-terminal or on pipes) as the notebook's user; `pty.input|resize|flow|close` act on it;
 * its output goes back as `pty.output` and its end as one `pty.exit`. A session's state only
 * moves forward: opening → running → exited. Messages for a session that is still opening
 * wait for it, in order. Input the process has not read is paced like its output, the other way:
 * above a high-water mark the controller is told to hold the session's input (`pty.inputFlow`
 * paused), below the low-water mark to send it again, so an upload goes at the process's pace.
 * A hard cap stays behind that for a controller that does not take pty.inputFlow (or ignores
 * it): past it the session ends with NBF_STREAM_LIMIT rather than fill the agent's memory.
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
  /** A session's unread input above which the controller is asked to hold its input... */
  inputHighWaterBytes?: number;
  /** ...and at or below which to send it again. */
  inputLowWaterBytes?: number;
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
  /** The controller was told to hold this session's input; the timer watches it drain. */
  inputPaused: boolean;
  inputTimer: NodeJS.Timeout | undefined;
}

/**
 * Above the input high-water mark the controller still has up to its own high-water mark of the
 * agent connection's backlog (1 MiB, controller terminal/input-flow.ts) plus what the sockets
 * hold in flight on the way before the pause reaches it: the cap sits well above that, so only a
 * controller that does not take pty.inputFlow (an older one, or a broken one) reaches it.
 */
const MAX_QUEUED_INPUT_BYTES = 8 * 1024 * 1024;
/** How often a session whose input is held looks whether its process has read it. */
const INPUT_DRAIN_CHECK_MS = 10;

export class PtyHost {
  private readonly sessions = new Map<string, Entry>();
  private readonly maxSessions: number;
  private readonly killGraceMs: number;
  private readonly highWater: number;
  private readonly lowWater: number;
  private readonly maxQueuedInput: number;
  private readonly inputHighWater: number;
  private readonly inputLowWater: number;
  private linkPaused = false;
  private pressureTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: PtyHostOptions) {
    this.maxSessions = options.maxSessions ?? 16;
    this.killGraceMs = options.killGraceMs ?? 2000;
    this.highWater = options.highWaterBytes ?? 1024 * 1024;
    this.lowWater = options.lowWaterBytes ?? 256 * 1024;
    this.maxQueuedInput = options.maxQueuedInputBytes ?? MAX_QUEUED_INPUT_BYTES;
    this.inputHighWater = options.inputHighWaterBytes ?? 256 * 1024;
    this.inputLowWater = options.inputLowWaterBytes ?? 64 * 1024;
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
      inputPaused: false,
      inputTimer: undefined,
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
    const queued = this.unread(entry) + data.length;
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
    if (queued > this.inputHighWater && !entry.inputPaused && entry.out.inputFlow) this.holdInput(entry);
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
      clearInterval(entry.inputTimer);
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

  /** Input received for the session that its process has not read yet. */
  private unread(entry: Entry): number {
    return entry.inputNotGiven + (entry.process?.queuedInput() ?? 0);
  }

  /** The process reads slower than its input comes: the controller holds the rest until it drained. */
  private holdInput(entry: Entry): void {
    entry.inputPaused = true;
    entry.out.send({ type: "pty.inputFlow", session: entry.id, paused: true });
    entry.inputTimer = setInterval(() => {
      if (this.unread(entry) > this.inputLowWater) return;
      clearInterval(entry.inputTimer);
      entry.inputTimer = undefined;
      entry.inputPaused = false;
      entry.out.send({ type: "pty.inputFlow", session: entry.id, paused: false });
    }, INPUT_DRAIN_CHECK_MS);
    entry.inputTimer.unref();
  }

  /** Input past the cap despite pty.inputFlow (or without it): the session ends instead of holding it. */
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
    clearInterval(entry.inputTimer);
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
