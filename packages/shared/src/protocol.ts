/**
 * The agent ↔ controller wire protocol: one WebSocket, JSON text frames, every frame one
 * message with `v` (protocol version), `type` and `id`. The same command messages are accepted
 * by the agent's local control socket, so `nbfleet-agent restart` and a controller-sent
 * `notebook.restart` take one path.
 */
import { type Static, type TSchema, Type } from "@sinclair/typebox";
import { HealthReport, NotebookStatus } from "./health.js";

const Id = Type.String({ minLength: 1, maxLength: 128 });
const Envelope = { v: Type.String({ pattern: "^\\d+\\.\\d+$" }), id: Id };

/** Everything the agent knows about its machine, sent whole (level-based, never a diff). */
export const AgentState = Type.Object({
  notebook: NotebookStatus,
  health: HealthReport,
});
export type AgentState = Static<typeof AgentState>;

export const AgentEvent = Type.Object({
  at: Type.String({ format: "date-time" }),
  kind: Type.String({ minLength: 1, maxLength: 64 }),
  level: Type.Union([Type.Literal("info"), Type.Literal("warn"), Type.Literal("error")]),
  message: Type.String({ maxLength: 8192 }),
  data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type AgentEvent = Static<typeof AgentEvent>;

// ---- commands --------------------------------------------------------------------------

const NoParams = Type.Object({}, { additionalProperties: false });

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
      source: Type.Union([Type.Literal("notebook"), Type.Literal("agent")]),
    },
    { additionalProperties: false },
  ),
  /** Run every check now, including the deep kernel check. */
  diagnose: NoParams,
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

export const AgentMessage = Type.Union([
  HelloMessage,
  StateMessage,
  EventMessage,
  AckMessage,
  ProgressMessage,
  ResultMessage,
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
});
export type WelcomeMessage = Static<typeof WelcomeMessage>;

export const ControllerMessage = Type.Union([WelcomeMessage, CommandMessage]);
export type ControllerMessage = Static<typeof ControllerMessage>;

/** WebSocket close codes the controller uses (4000–4999 are application-defined). */
export const CloseCode = {
  policyViolation: 1008,
  messageTooBig: 1009,
  unauthorized: 4001,
  protocolVersion: 4002,
  replaced: 4003,
  invalidMessage: 4004,
} as const;

export function isSchema(value: unknown): value is TSchema {
  return typeof value === "object" && value !== null && "type" in value;
}
