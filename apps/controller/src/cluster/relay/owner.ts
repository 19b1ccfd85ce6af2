/**
 * Which replica serves a VM's byte streams: the one holding its agent's socket
 * (`vm_status.replica_id`), reached at its `replicas.url`, if that replica is alive (a heartbeat
 * within three intervals). Null when the agent is held by no live replica other than this one.
 */
import type { Kysely } from "kysely";
import type { Database } from "../../store/schema.js";

export interface Peer {
  id: string;
  url: string;
  /** The key of the certificate it registered as served (peer-tls.ts); null: none registered. */
  keySha256: string | null;
}

export async function findOwningPeer(
  db: Kysely<Database>,
  vmName: string,
  selfId: string,
  /** Heartbeats older than this (ISO time) belong to dead replicas (aliveSince). */
  aliveSince: string,
): Promise<Peer | null> {
  const row = await db
    .selectFrom("vm_status")
    .innerJoin("replicas", "replicas.id", "vm_status.replica_id")
    .select([
      "replicas.id as id",
      "replicas.url as url",
      "replicas.heartbeat_at as heartbeatAt",
      "replicas.key_sha256 as keySha256",
    ])
    .where("vm_status.vm_name", "=", vmName)
    .executeTakeFirst();
  if (!row || row.id === selfId) return null;
  if (row.heartbeatAt < aliveSince) return null;
  return { id: row.id, url: row.url, keySha256: row.keySha256 };
}
