/**
 * Schema migrations, in code so they ship with the controller. Only Kysely's schema builder
 * with portable column types (text, integer; a blob is bytea there), so the same list runs on PostgreSQL.
 */
import {
  type Kysely,
  type Migration,
  type MigrationProvider,
  Migrator,
  PostgresAdapter,
  type RawBuilder,
  sql,
} from "kysely";
import { NbfError } from "../errors.js";
import { certificateNotAfter } from "./cert-not-after.js";

const migrations: Record<string, Migration> = {
  "0001_initial": {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("vms")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("provider", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("labels", "text", (c) => c.notNull())
        .addColumn("password_hash", "text")
        .addColumn("notebook_url", "text")
        .addColumn("provider_data", "text")
        .addColumn("error", "text")
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("vms_state").on("vms").columns(["state", "name"]).execute();

      await db.schema
        .createTable("vm_labels")
        .addColumn("vm_name", "text", (c) => c.notNull())
        .addColumn("key", "text", (c) => c.notNull())
        .addColumn("value", "text", (c) => c.notNull())
        .addPrimaryKeyConstraint("vm_labels_pk", ["vm_name", "key"])
        .execute();
      await db.schema
        .createIndex("vm_labels_kv")
        .on("vm_labels")
        .columns(["key", "value", "vm_name"])
        .execute();

      await db.schema
        .createTable("vm_status")
        .addColumn("vm_name", "text", (c) => c.primaryKey())
        .addColumn("agent_status", "text", (c) => c.notNull())
        .addColumn("last_seen_at", "text")
        .addColumn("connected_at", "text")
        .addColumn("agent_info", "text")
        .addColumn("notebook", "text")
        .addColumn("health", "text", (c) => c.notNull())
        .addColumn("health_report", "text")
        .addColumn("updated_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("vm_status_health")
        .on("vm_status")
        .columns(["health", "vm_name"])
        .execute();

      await db.schema
        .createTable("tokens")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("role", "text", (c) => c.notNull())
        .addColumn("hash", "text", (c) => c.notNull().unique())
        .addColumn("created_at", "text", (c) => c.notNull())
        .execute();

      await db.schema
        .createTable("agent_secrets")
        .addColumn("hash", "text", (c) => c.primaryKey())
        .addColumn("vm_name", "text", (c) => c.notNull())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("agent_secrets_vm")
        .on("agent_secrets")
        .columns(["vm_name", "kind"])
        .execute();

      await db.schema
        .createTable("commands")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("vm_name", "text", (c) => c.notNull())
        .addColumn("name", "text", (c) => c.notNull())
        .addColumn("params", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("sent_at", "text")
        .addColumn("acked_at", "text")
        .addColumn("finished_at", "text")
        .addColumn("expires_at", "text", (c) => c.notNull())
        .addColumn("timeout_ms", "integer", (c) => c.notNull())
        .addColumn("timeout_at", "text")
        .addColumn("attempts", "integer", (c) => c.notNull())
        .addColumn("result", "text")
        .addColumn("error_code", "text")
        .addColumn("error_message", "text")
        .addColumn("operation_id", "text")
        .execute();
      await db.schema.createIndex("commands_vm").on("commands").columns(["vm_name", "state"]).execute();
      await db.schema
        .createIndex("commands_expiry")
        .on("commands")
        .columns(["state", "expires_at"])
        .execute();
      await db.schema
        .createIndex("commands_timeout")
        .on("commands")
        .columns(["state", "timeout_at"])
        .execute();
      await db.schema.createIndex("commands_operation").on("commands").columns(["operation_id"]).execute();

      await db.schema
        .createTable("events")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("at", "text", (c) => c.notNull())
        .addColumn("vm_name", "text")
        .addColumn("source", "text", (c) => c.notNull())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("level", "text", (c) => c.notNull())
        .addColumn("message", "text", (c) => c.notNull())
        .addColumn("data", "text")
        .execute();
      await db.schema.createIndex("events_vm").on("events").columns(["vm_name", "id"]).execute();

      await db.schema
        .createTable("operations")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("selector", "text", (c) => c.notNull())
        .addColumn("params", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("max_concurrency", "integer", (c) => c.notNull())
        .addColumn("max_errors", "integer", (c) => c.notNull())
        .addColumn("summary", "text")
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .addColumn("finished_at", "text")
        .execute();
    },
  },
  "0002_operation_targets": {
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable("operations").addColumn("reason", "text").execute();
      await db.schema.alterTable("operations").addColumn("cancel_requested_at", "text").execute();
      await db.schema.alterTable("operations").addColumn("created_by", "text").execute();
      await db.schema.createIndex("operations_state").on("operations").columns(["state", "id"]).execute();

      await db.schema
        .createTable("operation_targets")
        .addColumn("operation_id", "text", (c) => c.notNull())
        .addColumn("seq", "integer", (c) => c.notNull())
        .addColumn("vm_name", "text", (c) => c.notNull())
        .addColumn("state", "text", (c) => c.notNull())
        .addColumn("command_id", "text")
        .addColumn("params", "text")
        .addColumn("started_at", "text")
        .addColumn("finished_at", "text")
        .addColumn("error_code", "text")
        .addColumn("error_message", "text")
        .addPrimaryKeyConstraint("operation_targets_pk", ["operation_id", "seq"])
        .execute();
      await db.schema
        .createIndex("operation_targets_state")
        .on("operation_targets")
        .columns(["operation_id", "state", "seq"])
        .execute();

      await db.schema
        .createTable("policies")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("value", "text", (c) => c.notNull())
        .addColumn("updated_at", "text", (c) => c.notNull())
        .addColumn("updated_by", "text")
        .execute();
    },
  },
  "0003_terminal_sessions": {
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("terminal_sessions")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("vm_name", "text", (c) => c.notNull())
        .addColumn("token_id", "text", (c) => c.notNull())
        .addColumn("token_name", "text", (c) => c.notNull())
        .addColumn("kind", "text", (c) => c.notNull())
        .addColumn("command", "text")
        .addColumn("tty", "integer", (c) => c.notNull())
        .addColumn("opened_at", "text", (c) => c.notNull())
        .addColumn("closed_at", "text")
        .addColumn("duration_ms", "integer")
        .addColumn("exit_code", "integer")
        .addColumn("signal", "text")
        .addColumn("end_reason", "text")
        .addColumn("bytes_in", "integer", (c) => c.notNull())
        .addColumn("bytes_out", "integer", (c) => c.notNull())
        .addColumn("attaches", "integer", (c) => c.notNull())
        .execute();
      await db.schema
        .createIndex("terminal_sessions_vm")
        .on("terminal_sessions")
        .columns(["vm_name", "id"])
        .execute();
    },
  },
  "0004_live_command_indexes": {
    // The sweeps look only at live commands: indexes over those alone stay small however long
    // the history grows, and finishing a command takes it out of them instead of rewriting an
    // entry (a finish costs about half as much). States are literals so SQLite's planner can
    // match the sweeps' WHERE to the index's.
    async up(db: Kysely<unknown>) {
      await db.schema.dropIndex("commands_expiry").execute();
      await db.schema.dropIndex("commands_timeout").execute();
      await db.schema
        .createIndex("commands_expiry_live")
        .on("commands")
        .column("expires_at")
        .where(sql<boolean>`state in ('queued', 'sent')`)
        .execute();
      await db.schema
        .createIndex("commands_timeout_live")
        .on("commands")
        .column("timeout_at")
        .where(sql<boolean>`state = 'acked'`)
        .execute();
    },
  },
  "0005_agent_secret_lifecycle": {
    // Bootstrap tokens expire unused, and stay valid after their exchange until the agent has
    // connected with the credential it got (a welcome lost on the way is then asked for again).
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable("agent_secrets").addColumn("expires_at", "text").execute();
      await db.schema.alterTable("agent_secrets").addColumn("exchanged_at", "text").execute();
      await db.schema.alterTable("agent_secrets").addColumn("confirmed_at", "text").execute();
      // Credentials issued before: taken as proven. Bootstrap tokens issued before: the default
      // lifetime from their issue (computed here: timestamp arithmetic is not portable SQL).
      await sql`update agent_secrets set confirmed_at = created_at where kind = 'credential'`.execute(db);
      const tokens = await sql<{ hash: string; created_at: string }>`
        select hash, created_at from agent_secrets where kind = 'bootstrap'`.execute(db);
      for (const { hash, created_at } of tokens.rows) {
        const issued = Date.parse(created_at);
        const expires = new Date((Number.isNaN(issued) ? Date.now() : issued) + 86_400_000).toISOString();
        await sql`update agent_secrets set expires_at = ${expires} where hash = ${hash}`.execute(db);
      }
    },
  },
  "0006_replicas": {
    // Several controller processes on one PostgreSQL: who is alive (heartbeats), who holds
    // which agent's socket, which replica runs each cluster-wide job (leases with an expiry),
    // and cluster-wide settings such as the secret replicas authenticate each other with.
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("replicas")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("url", "text", (c) => c.notNull())
        .addColumn("version", "text", (c) => c.notNull())
        .addColumn("started_at", "text", (c) => c.notNull())
        .addColumn("heartbeat_at", "text", (c) => c.notNull())
        .addColumn("agents", "integer", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("leases")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("holder", "text", (c) => c.notNull())
        .addColumn("expires_at", "text", (c) => c.notNull())
        .execute();
      await db.schema
        .createTable("cluster_settings")
        .addColumn("name", "text", (c) => c.primaryKey())
        .addColumn("value", "text", (c) => c.notNull())
        .execute();
      await db.schema.alterTable("vm_status").addColumn("replica_id", "text").execute();
    },
  },
  "0007_sessions": {
    // Console sign-ins: the cookie's value is stored only as its SHA-256, like API tokens.
    async up(db: Kysely<unknown>) {
      await db.schema
        .createTable("sessions")
        .addColumn("id", "text", (c) => c.primaryKey())
        .addColumn("hash", "text", (c) => c.notNull().unique())
        .addColumn("token_id", "text", (c) => c.notNull())
        .addColumn("created_at", "text", (c) => c.notNull())
        .addColumn("expires_at", "text", (c) => c.notNull())
        .addColumn("last_seen_at", "text", (c) => c.notNull())
        .execute();
      await db.schema.createIndex("sessions_token").on("sessions").columns(["token_id"]).execute();
      await db.schema.createIndex("sessions_expiry").on("sessions").columns(["expires_at"]).execute();
    },
  },
  "0008_agent_artifacts": {
    // The agent artifact catalog is a cluster-wide fact: replicas on other machines (other data
    // dirs) serve and roll out what any of them published. Bytes in the row (at most 64 MiB);
    // each replica keeps a local copy per sha256 to serve from (artifacts/local-copies.ts).
    async up(db: Kysely<unknown>) {
      const blob = db.getExecutor().adapter instanceof PostgresAdapter ? sql`bytea` : sql`blob`;
      await db.schema
        .createTable("agent_artifacts")
        .addColumn("version", "text", (c) => c.primaryKey())
        .addColumn("sha256", "text", (c) => c.notNull())
        .addColumn("bytes", "integer", (c) => c.notNull())
        .addColumn("signature", "text", (c) => c.notNull())
        .addColumn("published_at", "text", (c) => c.notNull())
        .addColumn("content", blob, (c) => c.notNull())
        .execute();
    },
  },
  "0009_vm_certificates": {
    // Issue 15: each VM's certificate source (JSON `{mode, hostname}`; null = self-signed, as
    // every VM made before) and its served certificate's expiry in a column of its own, so
    // `certExpiresWithinDays` is a range scan instead of parsing every VM's notebook JSON.
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable("vms").addColumn("certificate", "text").execute();
      await db.schema.alterTable("vm_status").addColumn("cert_not_after", "text").execute();
      await db.schema
        .createIndex("vm_status_cert_not_after")
        .on("vm_status")
        .columns(["cert_not_after", "vm_name"])
        .where(sql.ref("cert_not_after"), "is not", null)
        .execute();
      // Rows written before: their reported certificate's expiry, from the notebook JSON.
      const rows = await sql<{ vm_name: string; notebook: string }>`
        select vm_name, notebook from vm_status where notebook is not null`.execute(db);
      for (const { vm_name, notebook } of rows.rows) {
        const notAfter = certificateNotAfter(parseNotebook(notebook));
        if (notAfter !== null)
          await sql`update vm_status set cert_not_after = ${notAfter} where vm_name = ${vm_name}`.execute(db);
      }
    },
  },
  "0010_vm_status_holders": {
    // Replicas: the janitor asks every heartbeat which connected agents a dead replica held. A
    // scan of every status row for that took 350 ms of PostgreSQL at 30,000 VMs, every 5 s; this
    // index makes it a lookup of the dead replicas' rows. And vm_status is rewritten all the time
    // (every agent's status at least once a minute): pages left 30 % free let PostgreSQL update a
    // row in place (a HOT update, no index entries to write) when no indexed column changed.
    async up(db: Kysely<unknown>) {
      await db.schema
        .createIndex("vm_status_replica")
        .on("vm_status")
        .columns(["replica_id"])
        .where(sql<boolean>`agent_status = 'connected'`)
        .execute();
      if (db.getExecutor().adapter instanceof PostgresAdapter)
        await sql`alter table vm_status set (fillfactor = 70)`.execute(db);
    },
  },
  "0011_replica_keys": {
    // A replica registers the key of the certificate it serves: while replicas are moved one at a
    // time onto a certificate with a new key (controller.trust), peers on the old and the new one
    // still relay to each other. Null for a replica serving plain HTTP or trusting a CA.
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable("replicas").addColumn("key_sha256", "text").execute();
    },
  },
  "0012_replica_clock_offsets": {
    // Each replica measures its clock against the database server's (cluster/cluster-clock.ts)
    // and records the difference, so `nbfleet replicas` shows a machine whose time sync is off.
    async up(db: Kysely<unknown>) {
      await db.schema.alterTable("replicas").addColumn("clock_offset_ms", "bigint").execute();
    },
  },
};

function parseNotebook(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

const provider: MigrationProvider = {
  getMigrations: async () =>
    Object.fromEntries(
      Object.entries(migrations).map(([name, migration]) => [
        name,
        {
          async up(db: Kysely<unknown>) {
            await migration.up(db);
            await likeSqliteColumns(db);
          },
        },
      ]),
    ),
};

/**
 * On PostgreSQL each migration ends by giving the columns it made SQLite's semantics, so the
 * same repositories behave alike on both (SQLite needs nothing):
 * - text in byte order (collation "C"): by default PostgreSQL compares text in the database's
 *   collation, and a managed service's (en_US) puts 'VM-2' beside 'vm-2' and ignores '-' and
 *   '_' at first, so ids, names and the cursors paging them would order otherwise than on
 *   SQLite, and a page could skip or repeat rows. Every text column, since comparing two of
 *   different collations is an error.
 * - integers of 64 bits (bigint): `integer` is 32 bits there, and a terminal session's byte
 *   counts or duration in ms (2^31 ms is 25 days) would overflow it.
 */
async function likeSqliteColumns(db: Kysely<unknown>): Promise<void> {
  if (!(db.getExecutor().adapter instanceof PostgresAdapter)) return;
  const { rows } = await sql<{ table_name: string; column_name: string; data_type: string }>`
    select table_name, column_name, data_type from information_schema.columns
    where table_schema = current_schema() and table_name not like 'kysely%'
      and ((data_type = 'text' and coalesce(collation_name, '') <> 'C') or data_type = 'integer')
    order by table_name, ordinal_position`.execute(db);
  const tables = new Map<string, RawBuilder<unknown>[]>();
  for (const row of rows) {
    const type = row.data_type === "integer" ? sql`bigint` : sql`text collate "C"`;
    const change = sql`alter column ${sql.id(row.column_name)} type ${type}`;
    tables.set(row.table_name, [...(tables.get(row.table_name) ?? []), change]);
  }
  for (const [table, changes] of tables)
    await sql`alter table ${sql.id(table)} ${sql.join(changes)}`.execute(db);
}

export async function migrateToLatest(db: Kysely<unknown>): Promise<string[]> {
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === "Error")?.migrationName ?? "unknown";
    throw new NbfError("NBF_INTERNAL", { reason: `migration ${failed} failed: ${(error as Error).message}` });
  }
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}
