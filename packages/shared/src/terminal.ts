/**
 * The framing between a terminal client (the CLI, a browser with xterm.js) and the controller
 * on `GET /v1/vms/{name}/shell` (WebSocket). Bytes go in binary frames whose first byte names
 * the channel (0 stdin, 1 stdout, 2 stderr) — no base64, no JSON on the keystroke path. Control
 * goes in JSON text frames. The controller ↔ agent leg is the `pty.*` protocol instead.
 */
import { type Static, Type } from "@sinclair/typebox";
import { CommandError } from "./protocol.js";

export const TerminalChannel = { stdin: 0, stdout: 1, stderr: 2 } as const;
export type TerminalChannel = (typeof TerminalChannel)[keyof typeof TerminalChannel];

/** Output kept per session and replayed to a client that (re)attaches. */
export const TERMINAL_REPLAY_BYTES = 64 * 1024;

const Cols = Type.Integer({ minimum: 1, maximum: 1000 });
const Rows = Type.Integer({ minimum: 1, maximum: 1000 });

/** Client → controller text frames. */
export const TerminalClientFrame = Type.Union([
  Type.Object({ type: Type.Literal("resize"), cols: Cols, rows: Rows }, { additionalProperties: false }),
  /** Closes the process's stdin (without a tty), or types ^D (with one). */
  Type.Object({ type: Type.Literal("eof") }, { additionalProperties: false }),
  /** Ends the session (the process is killed); closing the socket only detaches. */
  Type.Object({ type: Type.Literal("close") }, { additionalProperties: false }),
]);
export type TerminalClientFrame = Static<typeof TerminalClientFrame>;

/** Controller → client text frames. */
export const TerminalServerFrame = Type.Union([
  /** First frame on every attach; replayed output (binary) follows it. */
  Type.Object({
    type: Type.Literal("session"),
    session: Type.String(),
    vm: Type.String(),
    tty: Type.Boolean(),
    reattached: Type.Boolean(),
    replayedBytes: Type.Integer({ minimum: 0 }),
  }),
  /** The process ended; the controller closes with 1000 right after. */
  Type.Object({
    type: Type.Literal("exit"),
    exitCode: Type.Union([Type.Integer(), Type.Null()]),
    signal: Type.Union([Type.String(), Type.Null()]),
  }),
  /** The session ended for another reason; the close code says which (TerminalCloseCode). */
  Type.Object({ type: Type.Literal("error"), ...CommandError.properties }),
]);
export type TerminalServerFrame = Static<typeof TerminalServerFrame>;

/** Close codes of the client socket. */
export const TerminalCloseCode = {
  /** The process exited (an `exit` frame came first). */
  exited: 1000,
  /** The controller is shutting down; the session is over. */
  goingAway: 1001,
  /** A frame the controller could not read. */
  invalidFrame: 4004,
  /** The agent disconnected; its processes were ended with the connection. */
  agentGone: 4010,
  /** No input and no output for the idle timeout. */
  idle: 4011,
  /** Another client attached to the session (this one is detached, the session goes on). */
  takenOver: 4012,
  /** The agent could not start the process. */
  openFailed: 4013,
  /** Ended by the controller (session closed by a client, or the VM deleted). */
  ended: 4014,
  /** The client left too much output unread; it is detached, the session goes on (attach again). */
  slowClient: 4015,
} as const;

/** One terminal session as the audit log shows it (`GET /v1/terminal-sessions`). */
export const TerminalSessionView = Type.Object({
  id: Type.String(),
  vmName: Type.String(),
  tokenId: Type.String(),
  tokenName: Type.String(),
  /** `shell`: an interactive login shell; `exec`: one command. */
  kind: Type.Union([Type.Literal("shell"), Type.Literal("exec")]),
  command: Type.Union([Type.String(), Type.Null()]),
  tty: Type.Boolean(),
  openedAt: Type.String({ format: "date-time" }),
  closedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  /** Null while the session lives. */
  durationMs: Type.Union([Type.Integer(), Type.Null()]),
  exitCode: Type.Union([Type.Integer(), Type.Null()]),
  signal: Type.Union([Type.String(), Type.Null()]),
  /** Why it ended: exited, idle, detached, agent_gone, closed, open_failed, controller_stopped, revoked (its token). */
  endReason: Type.Union([Type.String(), Type.Null()]),
  bytesIn: Type.Integer(),
  bytesOut: Type.Integer(),
  attaches: Type.Integer(),
});
export type TerminalSessionView = Static<typeof TerminalSessionView>;
