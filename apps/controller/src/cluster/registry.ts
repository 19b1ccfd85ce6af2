/**
 * The `replicas` table: each replica registers itself at start, writes a heartbeat (with the
 * number of agent sockets it holds) every `replicaHeartbeatSec`, and deletes its row on a clean
 * close. A replica whose heartbeat is older than three intervals is dead (replica.ts); the
 * janitor (janitor.ts) releases its agents and removes its row once it has been dead long enough.
 *
 * With SQLite the controller is one replica and nothing is written: `list()` answers with this
 * replica alone, so `GET /v1/replicas` means the same everywhere.
 */
import type { FastifyBaseLogger } from "fastify";
import type { Kysely } from "kysely";
import type { Dialect } from "../store/db.js";
import type { Database, ReplicasTable } from "../store/schema.js";
import type { ClusterClock } from "./cluster-clock.js";
import { type ReplicaIdentity, aliveSince } from "./replica.js";

export interface ReplicaView {
  id: string;
  url: string;
  version: string;
  startedAt: string;
  lastHeartbeatAt: string;
  agents: number;
  /** The key of the certificate it serves, when replicas pin each other's (no CA). */
  keySha256: string | null;
  /** Its machine's clock ahead of (positive) or behind the database server's, at its last heartbeat. */
  clockOffsetMs: number | null;
  alive: boolean;
  self: boolean;
}

export interface RegistryOptions {
  db: Kysely<Database>;
  dialect: Dialect;
  identity: ReplicaIdentity;
  heartbeatMs: number;
  /** Where the other replicas reach this one (`replicaUrl`, else the listening URL). */
  url(): string;
  /** Agent sockets held now. */
  agents(): number;
  /** The served certificate's key when peers pin it (see peer-tls.ts); null otherwise. */
  keySha256: string | null;
  log: FastifyBaseLogger;
  /** Heartbeats are on the cluster's clock; it is measured again before each. */
  clock: ClusterClock;
}

export class ReplicaRegistry {
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> | null = null;
  private failing = false;
  private closed = false;
  private lastBeatAt: string;

  constructor(private readonly options: RegistryOptions) {
    this.lastBeatAt = options.identity.startedAt;
  }

  get clustered(): boolean {
    return this.options.dialect === "postgres";
  }

  /** Registers this replica (a failure here fails the start) and starts the heartbeat. */
  async start(): Promise<void> {
    if (!this.clustered || this.timer) return;
    await this.write();
    this.timer = setInterval(() => void this.heartbeat(), this.options.heartbeatMs);
    this.timer.unref();
  }

  /** Writes the heartbeat now (e.g. once the replica listens and knows its URL); never throws. */
  heartbeat(): Promise<void> {
    if (!this.clustered || this.closed) return Promise.resolve();
    this.beating ??= this.write()
      .then(
        () => {
          if (this.failing) this.options.log.warn("replica heartbeat written again");
          this.failing = false;
        },
        (error) => {
          // Logged once per outage: the database monitor reports the outage itself.
          if (!this.failing) this.options.log.error({ err: error }, "writing the replica heartbeat failed");
          this.failing = true;
        },
      )
      .finally(() => {
        this.beating = null;
      });
    return this.beating;
  }

  /** Stops the heartbeat and deletes this replica's row (its agents are released by then). */
  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (!this.clustered) return;
    await this.beating;
    try {
      await this.options.db.deleteFrom("replicas").where("id", "=", this.options.identity.id).execute();
    } catch (error) {
      this.options.log.warn({ err: error }, "removing this replica's row failed; it will be seen dead");
    }
  }

  /** The replicas known, oldest first; the dead ones (not yet removed) only with `all`. */
  async list(options: { all?: boolean } = {}): Promise<ReplicaView[]> {
    const { identity, heartbeatMs } = this.options;
    const cutoff = aliveSince(heartbeatMs, this.options.clock.now());
    if (!this.clustered) {
      return [
        {
          id: identity.id,
          url: this.options.url(),
          version: identity.version,
          startedAt: identity.startedAt,
          lastHeartbeatAt: new Date().toISOString(),
          agents: this.options.agents(),
          keySha256: this.options.keySha256,
          clockOffsetMs: null,
          alive: true,
          self: true,
        },
      ];
    }
    let query = this.options.db.selectFrom("replicas").selectAll();
    if (!options.all) query = query.where("heartbeat_at", ">=", cutoff);
    const rows = await query.orderBy("started_at").orderBy("id").execute();
    return rows.map((row) => toView(row, cutoff, identity.id));
  }

  private async write(): Promise<void> {
    const { db, identity, clock } = this.options;
    // A failed measurement keeps the last offset; the write that follows reports the outage.
    await clock.measure().catch(() => {});
    const now = new Date(clock.now()).toISOString();
    const row: ReplicasTable = {
      id: identity.id,
      url: this.options.url(),
      version: identity.version,
      started_at: identity.startedAt,
      heartbeat_at: now,
      agents: this.options.agents(),
      key_sha256: this.options.keySha256,
      clock_offset_ms: clock.offsetMs,
    };
    // An upsert: a replica the janitor removed (after a long outage) registers again.
    await db
      .insertInto("replicas")
      .values(row)
      .onConflict((oc) =>
        oc.column("id").doUpdateSet({
          url: row.url,
          heartbeat_at: row.heartbeat_at,
          agents: row.agents,
          key_sha256: row.key_sha256,
          clock_offset_ms: row.clock_offset_ms,
        }),
      )
      .execute();
    this.lastBeatAt = now;
  }

  /** When this replica last wrote its heartbeat. */
  get lastHeartbeatAt(): string {
    return this.lastBeatAt;
  }
}

function toView(row: ReplicasTable, cutoff: string, selfId: string): ReplicaView {
  return {
    id: row.id,
    url: row.url,
    version: row.version,
    startedAt: row.started_at,
    lastHeartbeatAt: row.heartbeat_at,
    agents: Number(row.agents),
    keySha256: row.key_sha256,
    clockOffsetMs: row.clock_offset_ms === null ? null : Number(row.clock_offset_ms),
    alive: row.heartbeat_at >= cutoff,
    self: row.id === selfId,
  };
}
