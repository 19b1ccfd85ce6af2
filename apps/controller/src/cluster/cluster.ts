/**
 * This replica's part in the cluster, built once for the context: its identity, its row in
 * `replicas` (registry.ts) and the leases of the jobs that run once across the cluster
 * (leases.ts). With SQLite the same objects exist and are trivial: one replica, every lease held.
 */
import type { FastifyBaseLogger } from "fastify";
import type { ControllerSettings } from "../config/settings.js";
import type { Store } from "../store/store.js";
import type { ClusterClock } from "./cluster-clock.js";
import { Leases } from "./leases.js";
import { ReplicaRegistry } from "./registry.js";
import { DEAD_AFTER_INTERVALS, type ReplicaIdentity } from "./replica.js";

export interface Cluster {
  replica: ReplicaIdentity;
  /** PostgreSQL: other replicas may share the database. */
  clustered: boolean;
  heartbeatMs: number;
  registry: ReplicaRegistry;
  leases: Leases;
  /** The time replicas compare (cluster-clock.ts). */
  clock: ClusterClock;
}

export interface ClusterOptions {
  settings: ControllerSettings;
  store: Store;
  replica: ReplicaIdentity;
  log: FastifyBaseLogger;
  /** Where the other replicas reach this one. */
  url(): string;
  /** Agent sockets held now. */
  agents(): number;
  /** The served certificate's key when peers pin it; registered for them (peer-tls.ts). */
  keySha256: string | null;
  clock: ClusterClock;
}

export function createCluster({
  settings,
  store,
  replica,
  log,
  url,
  agents,
  keySha256,
  clock,
}: ClusterOptions): Cluster {
  const heartbeatMs = settings.replicaHeartbeatSec * 1000;
  const common = { db: store.db, dialect: store.dialect, log, clock };
  return {
    replica,
    clustered: store.dialect === "postgres",
    heartbeatMs,
    clock,
    registry: new ReplicaRegistry({ ...common, identity: replica, heartbeatMs, url, agents, keySha256 }),
    // A lease lives as long as a replica's heartbeat: renewed every interval, lost after three.
    leases: new Leases({
      ...common,
      holder: replica.id,
      ttlMs: DEAD_AFTER_INTERVALS * heartbeatMs,
      renewMs: heartbeatMs,
    }),
  };
}
