/**
 * This controller process as a member of the cluster: an id fresh at every start (`rep_…`), the
 * version it runs and when it started. A replica is alive while its heartbeat (registry.ts) is
 * younger than DEAD_AFTER_INTERVALS heartbeat intervals.
 */
import { AGENT_VERSION } from "@nbfleet/shared";
import { newId } from "../store/ids.js";

export interface ReplicaIdentity {
  id: string;
  version: string;
  startedAt: string;
}

export const DEAD_AFTER_INTERVALS = 3;

export function newReplicaIdentity(now = new Date()): ReplicaIdentity {
  return { id: newId("rep"), version: AGENT_VERSION, startedAt: now.toISOString() };
}

/** Heartbeats older than this (ISO time) belong to dead replicas. */
export function aliveSince(heartbeatMs: number, now = Date.now()): string {
  return new Date(now - DEAD_AFTER_INTERVALS * heartbeatMs).toISOString();
}
