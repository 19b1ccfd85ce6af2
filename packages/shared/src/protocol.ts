/**
 * The agent ↔ controller wire protocol: one WebSocket, JSON text frames, every frame one
 * message with `v` (protocol version), `type` and `id`. The same command messages are accepted
 * by the agent's local control socket, so `nbfleet-agent restart` and a controller-sent
 * `notebook.restart` take one path.
 */
import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { ARTIFACT_VERSION_PATTERN } from "./artifact-signature.js";
import { SHA256_COLON_HEX } from "./certificate-pin.js";
import { HealthReport, NotebookStatus } from "./health.js";

const Id = Type.String({ minLength: 1, maxLength: 128 });
const Envelope = { v: Type.String({ pattern: "^\\d+\\.\\d+$" }), id: Id };

/** Everything the agent knows about its machine, sent whole (level-based, never a diff). */
export const AgentState = Type.Object({
  notebook: NotebookStatus,
  health: HealthReport,
});
export type AgentState = Static<typeof AgentState>;

export const EventLevel = Type.Union([Type.Literal("info"), Type.Literal("warn"), Type.Literal("error")]);
export type EventLevel = Static<typeof EventLevel>;

export const AgentEvent = Type.Object({
  at: Type.String({ format: "date-time" }),
  kind: Type.String({ minLength: 1, maxLength: 64 }),
  level: EventLevel,
  message: Type.String({ maxLength: 8192 }),
  data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type AgentEvent = Static<typeof AgentEvent>;

/** The logs an agent can read: the notebook server's and its own. */
export const LogSource = Type.Union([Type.Literal("notebook"), Type.Literal("agent")]);
export type LogSource = Static<typeof LogSource>;

// ---- commands --------------------------------------------------------------------------

const NoParams = Type.Object({}, { additionalProperties: false });
/** At most this many controller certificates are trusted at once (controller.trust). */
export const MAX_TRUSTED_CONTROLLER_CERTIFICATES = 4;

export const CommandParams = {
  "notebook.start": NoParams,
  "notebook.stop": NoParams,
  "notebook.restart": NoParams,
  /** Only a hash ever travels: `argon2:…` or `sha1:…` in Jupyter's format. */
  "password.set": Type.Object(
    {
      hash: Type.String({
        pattern: "^(argon2:\\$argon2id?\\$|sha1:[0-9a-f]+:[0-9a-f]{40}$)",
        maxLength: 512,
      }),
    },
    { additionalProperties: false },
  ),
  /** A new self-signed certificate made on the guest; the private key never travels. */
  "certificate.rotate": Type.Object(
    {
      hostnames: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { maxItems: 32 })),
      ips: Type.Optional(Type.Array(Type.String({ minLength: 2, maxLength: 45 }), { maxItems: 32 })),
    },
    { additionalProperties: false },
  ),
  "logs.tail": Type.Object(
    {
      lines: Type.Integer({ minimum: 1, maximum: 10_000 }),
      source: LogSource,
    },
    { additionalProperties: false },
  ),
  /** Run every check now, including the deep kernel check. */
  diagnose: NoParams,
  /**
   * Install another agent version beside the running one and switch to it, the notebook server
   * untouched. The agent downloads `agentArtifactFilePath(version)` from its controller, checks
   * `bytes`, `sha256` and the release key's `signature` (artifact-signature.ts) before anything is
   * unpacked or switched, answers the result, then exits for its launcher to start the new one.
   */
  "agent.upgrade": Type.Object(
    {
      version: Type.String({ pattern: ARTIFACT_VERSION_PATTERN, maxLength: 64 }),
      sha256: Type.String({ pattern: "^[0-9a-f]{64}$" }),
      signature: Type.String({ pattern: "^[A-Za-z0-9+/]{86}==$" }),
      bytes: Type.Integer({ minimum: 1, maximum: 256 * 1024 * 1024 }),
      /** Seconds the new agent has to connect and report healthy before its launcher rolls back. */
      timeoutSec: Type.Optional(Type.Integer({ minimum: 10, maximum: 3600 })),
    },
    { additionalProperties: false },
  ),
  /**
   * The controller certificates the agent trusts from now on, instead of the one it was pinned
   * to (a controller moving to a new key): each by its SHA-256 and its key's. The agent refuses a
   * set without the certificate it is connected through, so it cannot lock itself out. Sent only
   * to an agent pinned to its controller (capability CAPABILITY_CONTROLLER_TRUST).
   */
  "controller.trust": Type.Object(
    {
      pins: Type.Array(
        Type.Object(
          {
            certificateSha256: Type.String({ pattern: SHA256_COLON_HEX }),
            keySha256: Type.String({ pattern: SHA256_COLON_HEX }),
          },
          { additionalProperties: false },
        ),
        { minItems: 1, maxItems: MAX_TRUSTED_CONTROLLER_CERTIFICATES },
      ),
    },
    { additionalProperties: false },
  ),
} as const;
export type CommandName = keyof typeof CommandParams;
export const COMMAND_NAMES = Object.keys(CommandParams) as CommandName[];
export type CommandParamsOf<N extends CommandName> = Static<(typeof CommandParams)[N]>;

function commandVariant<N extends CommandName>(name: N) {
  return Type.Object({
    ...Envelope,
    type: Type.Literal("command"),
    name: Type.Literal(name),
    params: CommandParams[name] as (typeof CommandParams)[N],
    /** Milliseconds since epoch after which the agent must not start the command. */
    deadline: Type.Optional(Type.Integer({ minimum: 0 })),
    /**
     * The time the command had left when the controller sent it, on the controller's clock.
     * Agents judge by this, not by `deadline`: a guest whose clock is off would otherwise refuse
     * every command (ahead) or start stale ones (behind). `deadline` stays for older agents.
     */
    ttlMs: Type.Optional(Type.Integer({ minimum: 0 })),
  });
}

export const CommandMessage = Type.Union([
  commandVariant("notebook.start"),
  commandVariant("notebook.stop"),
  commandVariant("notebook.restart"),
  commandVariant("password.set"),
  commandVariant("certificate.rotate"),
  commandVariant("logs.tail"),
  commandVariant("diagnose"),
  commandVariant("agent.upgrade"),
  commandVariant("controller.trust"),
]);
export type CommandMessage = Static<typeof CommandMessage>;

export const CommandError = Type.Object({
  code: Type.String({ pattern: "^NBF_[A-Z0-9_]+$" }),
  message: Type.String(),
});
export type CommandError = Static<typeof CommandError>;

// ---- agent → controller ----------------------------------------------------------------

export const HelloMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("hello"),
  agent: Type.Object({
    version: Type.String(),
    hostname: Type.String(),
    os: Type.String(),
    arch: Type.String(),
  }),
  capabilities: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 64 }),
  /** The id (trustSetId) of the controller certificates a controller.trust stored, if any. */
  controllerTrust: Type.Optional(Type.String({ pattern: "^[0-9a-f]{32}$" })),
  state: AgentState,
});

export const StateMessage = Type.Object({ ...Envelope, type: Type.Literal("state"), state: AgentState });
export const EventMessage = Type.Object({ ...Envelope, type: Type.Literal("event"), event: AgentEvent });
export const AckMessage = Type.Object({ ...Envelope, type: Type.Literal("ack"), commandId: Id });
export const ProgressMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("progress"),
  commandId: Id,
  message: Type.String({ maxLength: 4096 }),
});
export const ResultMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("result"),
  commandId: Id,
  ok: Type.Boolean(),
  data: Type.Optional(Type.Unknown()),
  error: Type.Optional(CommandError),
});

// ---- streams: terminals and log follows ----------------------------------------------
//
// Unlike commands, streams are not persisted and not resent: they live and die with the one
// connection that carries them (the agent ends every stream when its connection closes). Bytes
// travel base64-encoded in the same JSON text frames as everything else, so both ends keep one
// parser and check every frame against these schemas; the 4/3 size is immaterial for a terminal
// and chunks are capped at PTY_CHUNK_BYTES.

/** Largest raw byte chunk in one pty.input or pty.output message. */
export const PTY_CHUNK_BYTES = 64 * 1024;
/** Largest number of lines, and of characters per line, in one logs.data message. */
export const LOG_BATCH_LINES = 500;
export const LOG_LINE_MAX_CHARS = 16 * 1024;
/** Capabilities (sent in the hello) of an agent that serves these streams. */
export const CAPABILITY_PTY = "pty";
export const CAPABILITY_LOGS_FOLLOW = "logs.follow";
/** Capability of an agent that installs another version on an `agent.upgrade` command. */
export const CAPABILITY_AGENT_UPGRADE = "agent.upgrade";
/** Capability of an agent pinned to its controller's certificate, which takes `controller.trust`. */
export const CAPABILITY_CONTROLLER_TRUST = "controller.trust";
/**
 * Feature (in the welcome) of a controller that takes `pty.inputFlow`. An agent sends a message
 * of a feature only to a controller that names it: an older one closes the connection (4004) on
 * a message type it does not know, ending every stream on it.
 */
export const FEATURE_PTY_INPUT_FLOW = "pty.inputFlow";

const StreamId = Type.String({ pattern: "^[A-Za-z0-9_.-]{1,64}$" });
const Base64 = Type.String({
  pattern: "^[A-Za-z0-9+/]*={0,2}$",
  maxLength: Math.ceil(PTY_CHUNK_BYTES / 3) * 4,
});
const TerminalCols = Type.Integer({ minimum: 1, maximum: 1000 });
const TerminalRows = Type.Integer({ minimum: 1, maximum: 1000 });

/**
 * Starts a process on the guest as the notebook's user: with `tty` in a pseudo-terminal (a
 * login shell, or `command` run by it), without `tty` with pipes (stdout and stderr apart).
 */
export const PtyOpenMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("pty.open"),
  session: StreamId,
  tty: Type.Boolean(),
  cols: TerminalCols,
  rows: TerminalRows,
  /** Run by the user's shell with `-c`; a login shell when absent. */
  command: Type.Optional(Type.String({ minLength: 1, maxLength: 16 * 1024 })),
});
/** Bytes for the process's input; `eof` then closes it (pipes) or types ^D (a tty). */
export const PtyInputMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("pty.input"),
  session: StreamId,
  data: Base64,
  eof: Type.Optional(Type.Boolean()),
});
export const PtyResizeMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("pty.resize"),
  session: StreamId,
  cols: TerminalCols,
  rows: TerminalRows,
});
/** Stop reading the process's output while the reader downstream is slow, and read again. */
export const PtyFlowMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("pty.flow"),
  session: StreamId,
  paused: Type.Boolean(),
});
/** Ends the process (SIGHUP, SIGKILL after a grace); a pty.exit follows. */
export const PtyCloseMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("pty.close"),
  session: StreamId,
});
/** The last `lines` lines of a log, then (with `follow`) every new line until logs.close. */
export const LogsOpenMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("logs.open"),
  stream: StreamId,
  source: LogSource,
  lines: Type.Integer({ minimum: 0, maximum: 10_000 }),
  follow: Type.Boolean(),
});
export const LogsCloseMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("logs.close"),
  stream: StreamId,
});

export const PtyOpenedMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("pty.opened"),
  session: StreamId,
  pid: Type.Integer({ minimum: 1 }),
});
export const PtyOutputMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("pty.output"),
  session: StreamId,
  data: Base64,
  /** `stderr` only for sessions without a tty. */
  stream: Type.Union([Type.Literal("stdout"), Type.Literal("stderr")]),
});
/**
 * `paused: true`: the process has left much of its input unread, so the controller holds the
 * session's further input (and stops reading its client) until `paused: false`. The mirror of
 * pty.flow. Sent only to a controller whose welcome names FEATURE_PTY_INPUT_FLOW.
 */
export const PtyInputFlowMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("pty.inputFlow"),
  session: StreamId,
  paused: Type.Boolean(),
});
/** The session is over: the process exited (code or signal), or it never started (`error`). */
export const PtyExitMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("pty.exit"),
  session: StreamId,
  exitCode: Type.Union([Type.Integer(), Type.Null()]),
  signal: Type.Union([Type.String({ maxLength: 32 }), Type.Null()]),
  error: Type.Optional(CommandError),
});
/** Lines of a log, oldest first; the first logs.data of a stream confirms it is open. */
export const LogsDataMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("logs.data"),
  stream: StreamId,
  lines: Type.Array(Type.String({ maxLength: LOG_LINE_MAX_CHARS }), { maxItems: LOG_BATCH_LINES }),
});
/** The stream is over: all lines sent (no follow), or it failed (`error`). */
export const LogsEndMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("logs.end"),
  stream: StreamId,
  error: Type.Optional(CommandError),
});

export const ControllerStreamMessage = Type.Union([
  PtyOpenMessage,
  PtyInputMessage,
  PtyResizeMessage,
  PtyFlowMessage,
  PtyCloseMessage,
  LogsOpenMessage,
  LogsCloseMessage,
]);
export type ControllerStreamMessage = Static<typeof ControllerStreamMessage>;
export const AgentStreamMessage = Type.Union([
  PtyOpenedMessage,
  PtyOutputMessage,
  PtyInputFlowMessage,
  PtyExitMessage,
  LogsDataMessage,
  LogsEndMessage,
]);
export type AgentStreamMessage = Static<typeof AgentStreamMessage>;
export const CONTROLLER_STREAM_TYPES = [
  "pty.open",
  "pty.input",
  "pty.resize",
  "pty.flow",
  "pty.close",
  "logs.open",
  "logs.close",
] as const satisfies ReadonlyArray<ControllerStreamMessage["type"]>;
export const AGENT_STREAM_TYPES = [
  "pty.opened",
  "pty.output",
  "pty.inputFlow",
  "pty.exit",
  "logs.data",
  "logs.end",
] as const satisfies ReadonlyArray<AgentStreamMessage["type"]>;

export const AgentMessage = Type.Union([
  HelloMessage,
  StateMessage,
  EventMessage,
  AckMessage,
  ProgressMessage,
  ResultMessage,
  PtyOpenedMessage,
  PtyOutputMessage,
  PtyInputFlowMessage,
  PtyExitMessage,
  LogsDataMessage,
  LogsEndMessage,
]);
export type AgentMessage = Static<typeof AgentMessage>;
export type HelloMessage = Static<typeof HelloMessage>;
export type StateMessage = Static<typeof StateMessage>;
export type ResultMessage = Static<typeof ResultMessage>;

// ---- controller → agent ----------------------------------------------------------------

export const WelcomeMessage = Type.Object({
  ...Envelope,
  type: Type.Literal("welcome"),
  vmName: Type.String(),
  /** Seconds between steady state reports. */
  reportIntervalSec: Type.Integer({ minimum: 1, maximum: 3600 }),
  /** Issued once, in exchange for the bootstrap token; the agent stores it 0600. */
  credential: Type.Optional(Type.String({ minLength: 16, maxLength: 256 })),
  /**
   * Agent messages this controller takes beyond those every controller of this major takes
   * (FEATURE_*). Absent from older controllers, which older agents never look for.
   */
  features: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 64 })),
});
export type WelcomeMessage = Static<typeof WelcomeMessage>;

export const ControllerMessage = Type.Union([
  WelcomeMessage,
  CommandMessage,
  ...ControllerStreamMessage.anyOf,
]);
export type ControllerMessage = Static<typeof ControllerMessage>;

/** WebSocket close codes the controller uses (4000–4999 are application-defined). */
export const CloseCode = {
  /** The controller is shutting down. */
  goingAway: 1001,
  policyViolation: 1008,
  messageTooBig: 1009,
  internalError: 1011,
  /** Too busy (too many handshakes at once, or a peer that does not read): come back later. */
  tryLater: 1013,
  unauthorized: 4001,
  protocolVersion: 4002,
  replaced: 4003,
  invalidMessage: 4004,
} as const;

export function isSchema(value: unknown): value is TSchema {
  return typeof value === "object" && value !== null && "type" in value;
}
