/**
 * The controller's HTTP API shapes (what `GET /v1/vms` and friends return), shared so the CLI,
 * the benchmark and outside tests read the same definitions the server validates against.
 */
import { type Static, Type } from "@sinclair/typebox";
import {
  AgentLinkStatus,
  CertificateInfo,
  HealthCheck,
  JupyterGeneration,
  NotebookState,
  OverallHealth,
} from "./health.js";
import { CommandError, EventLevel } from "./protocol.js";
import { VM_STATES } from "./states.js";

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);
const Timestamp = Type.String({ format: "date-time" });

export const VmState = Type.Union(VM_STATES.map((s) => Type.Literal(s)));
export type VmState = Static<typeof VmState>;

/**
 * A VM's outstanding bootstrap token: `unused` (waiting for its agent), `exchanged` (traded for a
 * credential the agent has not connected with yet; it may be traded again) or `expired`. Null
 * once the agent has connected with its credential.
 */
export const BootstrapTokenView = Type.Object({
  state: Type.Union([Type.Literal("unused"), Type.Literal("exchanged"), Type.Literal("expired")]),
  issuedAt: Timestamp,
  expiresAt: Timestamp,
  exchangedAt: Nullable(Timestamp),
  /** A sentence for people: what the state means and, once expired, how to issue a new token. */
  note: Type.String(),
});
export type BootstrapTokenView = Static<typeof BootstrapTokenView>;

/** An ACME-able DNS name: at least two labels, letters, digits and hyphens. */
export const DNS_NAME_PATTERN =
  "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$";

/**
 * An ACME directory URL and an account email as the fleet carries them to guests: kept to
 * characters no quoting has to carry (they end up on a command line), so the controller refuses
 * at start what a bootstrap would refuse at each create.
 */
export const ACME_DIRECTORY_URL_PATTERN =
  "^https://(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?(/[A-Za-z0-9._~%+=:@/-]*)?$";
export const ACME_EMAIL_PATTERN = "^[A-Za-z0-9._%+-]+@[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$";

export const CERTIFICATE_MODES = ["self-signed", "acme"] as const;
export const CertificateMode = Type.Union(CERTIFICATE_MODES.map((m) => Type.Literal(m)));
export type CertificateMode = Static<typeof CertificateMode>;

/**
 * Where a VM's notebook certificate comes from, as asked at creation (`POST /v1/vms`
 * `certificate`): `acme` needs the machine's public DNS name (`hostname`), which on Azure
 * defaults to its `<label>.<region>.cloudapp.azure.com` name.
 */
export const VmCertificateRequest = Type.Object(
  {
    mode: CertificateMode,
    hostname: Type.Optional(Type.String({ maxLength: 253, pattern: DNS_NAME_PATTERN })),
  },
  { additionalProperties: false },
);
export type VmCertificateRequest = Static<typeof VmCertificateRequest>;

export const VmView = Type.Object({
  name: Type.String(),
  provider: Type.String(),
  /** The machine's state as the provider left it. */
  state: VmState,
  labels: Type.Record(Type.String(), Type.String()),
  /** The certificate source chosen at creation (what is served now: `notebook.certificate`). */
  certificate: Type.Object({ mode: CertificateMode, hostname: Nullable(Type.String()) }),
  error: Nullable(Type.String()),
  createdAt: Timestamp,
  updatedAt: Timestamp,
  agent: Type.Object({
    status: AgentLinkStatus,
    lastSeenAt: Nullable(Timestamp),
    connectedAt: Nullable(Timestamp),
    version: Nullable(Type.String()),
    /** Older than the controller's newest agent artifact (null: not known). */
    outdated: Nullable(Type.Boolean()),
    hostname: Nullable(Type.String()),
    bootstrap: Nullable(BootstrapTokenView),
  }),
  notebook: Type.Object({
    /** Null until the agent has reported. */
    state: Nullable(NotebookState),
    url: Nullable(Type.String()),
    pid: Nullable(Type.Integer()),
    port: Nullable(Type.Integer()),
    restarts: Type.Integer(),
    startedAt: Nullable(Timestamp),
    generation: Nullable(JupyterGeneration),
    version: Nullable(Type.String()),
    lastError: Nullable(Type.String()),
    certificate: Nullable(CertificateInfo),
  }),
  health: Type.Object({
    /** `unknown` whenever the agent is not connected. */
    status: OverallHealth,
    reasons: Type.Array(Type.String()),
    checks: Type.Array(HealthCheck),
    observedAt: Nullable(Timestamp),
  }),
});
export type VmView = Static<typeof VmView>;

export const VmList = Type.Object({
  items: Type.Array(VmView),
  /** Pass as `cursor` for the next page; null on the last page. */
  nextCursor: Nullable(Type.String()),
});
export type VmList = Static<typeof VmList>;

export const COMMAND_STATES = [
  "queued",
  "sent",
  "acked",
  "succeeded",
  "failed",
  "timed_out",
  "expired",
] as const;
export const CommandState = Type.Union(COMMAND_STATES.map((s) => Type.Literal(s)));
export type CommandState = Static<typeof CommandState>;

export const CommandView = Type.Object({
  id: Type.String(),
  vmName: Type.String(),
  name: Type.String(),
  params: Type.Record(Type.String(), Type.Unknown()),
  state: CommandState,
  createdAt: Timestamp,
  sentAt: Nullable(Timestamp),
  ackedAt: Nullable(Timestamp),
  finishedAt: Nullable(Timestamp),
  /** Not acknowledged by then → expired. */
  expiresAt: Timestamp,
  timeoutSec: Type.Number(),
  attempts: Type.Integer(),
  result: Type.Unknown(),
  error: Nullable(CommandError),
  operationId: Nullable(Type.String()),
  /** Whether the VM's agent is connected right now. */
  agentConnected: Type.Boolean(),
  /** A sentence for people, e.g. that the command waits for an offline agent until expiresAt. */
  note: Nullable(Type.String()),
});
export type CommandView = Static<typeof CommandView>;

export const FleetEventView = Type.Object({
  id: Type.String(),
  at: Timestamp,
  vmName: Nullable(Type.String()),
  source: Type.Union([Type.Literal("agent"), Type.Literal("controller")]),
  kind: Type.String(),
  level: EventLevel,
  message: Type.String(),
  data: Nullable(Type.Record(Type.String(), Type.Unknown())),
});
export type FleetEventView = Static<typeof FleetEventView>;

export const ROLES = ["viewer", "operator", "admin"] as const;
export const Role = Type.Union(ROLES.map((r) => Type.Literal(r)));
export type Role = Static<typeof Role>;

export const TokenView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  role: Role,
  createdAt: Timestamp,
});
export type TokenView = Static<typeof TokenView>;

/** A console sign-in: the session cookie's session, with the token it was opened with. */
export const SessionView = Type.Object({
  id: Type.String(),
  role: Role,
  tokenId: Type.String(),
  tokenName: Type.String(),
  expiresAt: Timestamp,
});
export type SessionView = Static<typeof SessionView>;

export const CreateSessionBody = Type.Object(
  { token: Type.String({ minLength: 1, maxLength: 512, description: "an operator API token (nbf_…)" }) },
  { additionalProperties: false },
);
export type CreateSessionBody = Static<typeof CreateSessionBody>;

export const SessionListItem = Type.Object({
  id: Type.String(),
  tokenId: Type.String(),
  tokenName: Type.String(),
  role: Role,
  createdAt: Timestamp,
  expiresAt: Timestamp,
  lastSeenAt: Timestamp,
});
export type SessionListItem = Static<typeof SessionListItem>;

export const ApiError = Type.Object({
  error: Type.Object({
    code: Type.String({ pattern: "^NBF_[A-Z0-9_]+$" }),
    message: Type.String(),
    details: Type.Record(Type.String(), Type.Unknown()),
  }),
});
export type ApiError = Static<typeof ApiError>;

/** A controller replica (`GET /v1/replicas`): one process on the shared database. */
export const ReplicaView = Type.Object({
  id: Type.String(),
  /** Where the other replicas reach it (NBFLEET_REPLICA_URL, else its listen address). */
  url: Type.String(),
  version: Type.String(),
  startedAt: Timestamp,
  lastHeartbeatAt: Timestamp,
  /** Agent sockets it held at its last heartbeat. */
  agents: Type.Integer({ minimum: 0 }),
  /**
   * SHA-256 of the key of the certificate it serves, when replicas and guests pin the
   * controller's certificate (no CA); null otherwise. During a move to a new key it tells which
   * replicas serve the new one.
   */
  keySha256: Type.Union([Type.String(), Type.Null()]),
  /**
   * Its machine's clock ahead of (positive) or behind the database server's, in ms, as it
   * measured at its last heartbeat; null with SQLite (one replica) and for replicas of an older
   * version. The replicas compare times on the database's clock, so an offset changes nothing
   * between them; beyond a second the replica logs a warning (its machine's time sync is off).
   */
  clockOffsetMs: Type.Union([Type.Integer(), Type.Null()]),
  /** Its heartbeat is younger than three heartbeat intervals. */
  alive: Type.Boolean(),
  /** It is the replica that answered. */
  self: Type.Boolean(),
});
export type ReplicaView = Static<typeof ReplicaView>;

export const ReplicaList = Type.Object({ items: Type.Array(ReplicaView) });
export type ReplicaList = Static<typeof ReplicaList>;

/** `GET /v1/fleet/summary`: how many machines the fleet has, per health. */
export const FleetSummary = Type.Object({
  total: Type.Integer({ minimum: 0 }),
  byHealth: Type.Object({
    healthy: Type.Integer({ minimum: 0 }),
    degraded: Type.Integer({ minimum: 0 }),
    unhealthy: Type.Integer({ minimum: 0 }),
    unknown: Type.Integer({ minimum: 0 }),
  }),
});
export type FleetSummary = Static<typeof FleetSummary>;

/** `POST /v1/fleet/teardown`: what the provider deleted of the fleet's shared resources. */
export const FleetTeardownReport = Type.Object({
  provider: Type.String(),
  deleted: Type.Array(Type.String()),
  /** The resource group stays when it holds anything nbfleet did not make. */
  resourceGroupDeleted: Type.Boolean(),
  keptBecause: Type.Union([Type.String(), Type.Null()]),
});
export type FleetTeardownReport = Static<typeof FleetTeardownReport>;
