/**
 * Table shapes as Kysely sees them. Timestamps are ISO-8601 UTC strings (they sort as text on
 * every dialect); structured values are JSON text. Nothing here is SQLite-specific.
 */

export interface VmsTable {
  name: string;
  provider: string;
  state: string;
  /** JSON object of labels; vm_labels holds the same pairs for filtering. */
  labels: string;
  password_hash: string | null;
  /** The notebook URL the provider knows before the agent reports one. */
  notebook_url: string | null;
  /** JSON the provider keeps about its machine (paths, resource ids, ...). */
  provider_data: string | null;
  error: string | null;
  created_at: string;
  updated_at: string;
  /** JSON `{mode, hostname}` chosen at creation; null (VMs made before issue 15): self-signed. */
  certificate?: string | null;
}

export interface VmLabelsTable {
  vm_name: string;
  key: string;
  value: string;
}

/** Latest state of a VM's agent link and health, written in batches (write-behind). */
export interface VmStatusTable {
  vm_name: string;
  agent_status: string;
  last_seen_at: string | null;
  connected_at: string | null;
  /** JSON: the hello's `agent` block (version, hostname, os, arch). */
  agent_info: string | null;
  /** JSON NotebookStatus as last reported. */
  notebook: string | null;
  /** Effective health: the agent's overall status while connected, `unknown` otherwise. */
  health: string;
  /** JSON HealthReport as last reported. */
  health_report: string | null;
  updated_at: string;
  /** The replica holding the agent's socket while it is connected (null: none, or SQLite). */
  replica_id?: string | null;
  /** The served certificate's notAfter (ISO, from `notebook`), for the expiry filter; null: none reported. */
  cert_not_after?: string | null;
}

export interface TokensTable {
  id: string;
  name: string;
  role: string;
  /** SHA-256 hex of the token; the token itself is never stored. */
  hash: string;
  created_at: string;
}

export interface AgentSecretsTable {
  hash: string;
  vm_name: string;
  kind: string;
  created_at: string;
  /** Bootstrap tokens: refused from then on (pushed back by each exchange). */
  expires_at: string | null;
  /** Bootstrap tokens: the last exchange for a credential; null while unused. */
  exchanged_at: string | null;
  /** Credentials: the agent's first connection with it; null until then (the token stays valid). */
  confirmed_at: string | null;
}

export interface CommandsTable {
  id: string;
  vm_name: string;
  name: string;
  params: string;
  state: string;
  created_at: string;
  sent_at: string | null;
  acked_at: string | null;
  finished_at: string | null;
  /** A command not acknowledged by then expires. */
  expires_at: string;
  timeout_ms: number;
  /** Set at ack: a command without a result by then times out. */
  timeout_at: string | null;
  attempts: number;
  result: string | null;
  error_code: string | null;
  error_message: string | null;
  operation_id: string | null;
}

export interface EventsTable {
  id: string;
  at: string;
  vm_name: string | null;
  source: string;
  kind: string;
  level: string;
  message: string;
  data: string | null;
}

export interface OperationsTable {
  id: string;
  kind: string;
  selector: string;
  params: string;
  state: string;
  max_concurrency: number;
  max_errors: number;
  summary: string | null;
  created_at: string;
  updated_at: string;
  finished_at: string | null;
  /** Why the operation ended as it did (error budget, cancel, ...). */
  reason: string | null;
  cancel_requested_at: string | null;
  /** Name of the token that created it. */
  created_by: string | null;
}

/** One VM of a bulk operation; `seq` is its place in the rollout order. */
export interface OperationTargetsTable {
  operation_id: string;
  seq: number;
  vm_name: string;
  state: string;
  /** Derived from the operation and seq, so a resumed operation finds the command it sent. */
  command_id: string | null;
  /** JSON the target's action needs (e.g. the new password's hash; never a plaintext). */
  params: string | null;
  started_at: string | null;
  finished_at: string | null;
  error_code: string | null;
  error_message: string | null;
}

/** Named JSON policies set through the API (e.g. `idle`). */
export interface PoliciesTable {
  name: string;
  value: string;
  updated_at: string;
  updated_by: string | null;
}

/** The terminal audit log: one row per session (shell or exec), written at open and at end. */
export interface TerminalSessionsTable {
  id: string;
  vm_name: string;
  token_id: string;
  /** The token's name when the session opened (kept if the token is deleted later). */
  token_name: string;
  kind: string;
  command: string | null;
  tty: number;
  opened_at: string;
  closed_at: string | null;
  duration_ms: number | null;
  exit_code: number | null;
  signal: string | null;
  end_reason: string | null;
  bytes_in: number;
  bytes_out: number;
  attaches: number;
}

/** One row per controller process on the database, kept fresh by its heartbeat. */
export interface ReplicasTable {
  id: string;
  /** Where the other replicas reach this one (NBFLEET_REPLICA_URL). */
  url: string;
  version: string;
  started_at: string;
  heartbeat_at: string;
  /** Agents whose socket this replica held at its last heartbeat. */
  agents: number;
  /** SHA-256 of the key of the certificate it serves when peers pin it (no CA); null otherwise. */
  key_sha256: string | null;
  /** Its machine's clock minus the database server's, measured at its last heartbeat (ms). */
  clock_offset_ms: number | null;
}

/** A cluster-wide job runs on the replica holding its lease, until `expires_at`. */
export interface LeasesTable {
  name: string;
  holder: string;
  expires_at: string;
}

export interface ClusterSettingsTable {
  name: string;
  value: string;
}

/** The agent artifact catalog, cluster-wide: each version's record and its bytes. */
export interface AgentArtifactsTable {
  version: string;
  sha256: string;
  bytes: number;
  signature: string;
  published_at: string;
  /** The tarball (bytea on PostgreSQL, blob on SQLite); at most ARTIFACT_MAX_BYTES. */
  content: Buffer;
}

export interface SessionsTable {
  id: string;
  /** SHA-256 of the cookie's value; the value itself is never stored. */
  hash: string;
  token_id: string;
  created_at: string;
  expires_at: string;
  last_seen_at: string;
}

export interface Database {
  vms: VmsTable;
  vm_labels: VmLabelsTable;
  vm_status: VmStatusTable;
  tokens: TokensTable;
  agent_secrets: AgentSecretsTable;
  commands: CommandsTable;
  events: EventsTable;
  operations: OperationsTable;
  operation_targets: OperationTargetsTable;
  policies: PoliciesTable;
  terminal_sessions: TerminalSessionsTable;
  replicas: ReplicasTable;
  leases: LeasesTable;
  cluster_settings: ClusterSettingsTable;
  sessions: SessionsTable;
  agent_artifacts: AgentArtifactsTable;
}
