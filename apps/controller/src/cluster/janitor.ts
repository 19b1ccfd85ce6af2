/**
 * The janitor (a leased job, PostgreSQL only): every heartbeat interval, agents recorded as held
 * by a replica that is no longer alive are marked disconnected (health `unknown`, as at start-up)
 * so the fleet's view does not wait for them to reconnect elsewhere, and replica rows dead for
 * longer than REMOVE_DEAD_AFTER_MS are deleted.
 */
import type { FastifyBaseLogger } from "fastify";
import { sql } from "kysely";
import type { EventBus } from "../events/bus.js";
import type { Store } from "../store/store.js";
import type { ClusterClock } from "./cluster-clock.js";
import type { LeasedJob } from "./leases.js";
import { aliveSince } from "./replica.js";

/** A dead replica's row stays listed (`GET /v1/replicas?all=true`, alive false) this long. */
export const REMOVE_DEAD_AFTER_MS = 3_600_000;

export interface JanitorOptions {
  store: Store;
  bus: EventBus;
  heartbeatMs: number;
  log: FastifyBaseLogger;
  /** The time replicas compare (cluster-clock.ts). */
  clock: ClusterClock;
}

/**
 * Every FULL_PASS_EVERY-th pass (and the first) checks every connected agent against the live
 * replicas, which also catches a holder id that is not registered at all; the passes between
 * look up only the agents of replicas whose heartbeat stopped (an index lookup instead of a scan
 * of the whole fleet's status: 350 ms of PostgreSQL every 5 s at 30,000 VMs).
 */
export const FULL_PASS_EVERY = 12;

/** One pass; returns the agents released and the replica rows removed. */
export async function sweepDeadReplicas(
  options: Pick<JanitorOptions, "store" | "bus" | "heartbeatMs">,
  now = Date.now(),
  full = true,
): Promise<{ agents: number; removed: number }> {
  const { store, bus, heartbeatMs } = options;
  const since = aliveSince(heartbeatMs, now);
  const agents = full
    ? await store.vms.markDisconnectedUnlessHeldLive(since)
    : await store.vms.markDisconnectedHeldBy(await deadReplicaIds(store, since));
  const removed = await store.db
    .deleteFrom("replicas")
    .where("heartbeat_at", "<", new Date(now - REMOVE_DEAD_AFTER_MS).toISOString())
    .executeTakeFirst();
  if (agents > 0)
    bus.emit({
      vmName: null,
      kind: "replica.agents_released",
      level: "warn",
      message: `${agents} agent(s) held by replicas that stopped heartbeating marked disconnected; they reconnect to a live replica`,
      data: { agents },
    });
  return { agents, removed: Number(removed.numDeletedRows) };
}

/** Registered replicas whose last heartbeat is older than `aliveSince`. */
async function deadReplicaIds(store: Store, aliveSince: string): Promise<string[]> {
  const rows = await store.db
    .selectFrom("replicas")
    .select("id")
    .where("heartbeat_at", "<", aliveSince)
    .execute();
  return rows.map((row) => row.id);
}

/**
 * At start-up no agent is connected to this process. With SQLite every agent recorded as
 * connected becomes disconnected; with PostgreSQL only those no live replica holds.
 */
export function releaseAgentsAtStart(store: Store, heartbeatMs: number, now: number): Promise<number> {
  return store.dialect === "postgres"
    ? store.vms.markDisconnectedUnlessHeldLive(aliveSince(heartbeatMs, now))
    : store.vms.markAllDisconnected();
}

/**
 * The janitor's passes. It releases agents only once its own database access has worked for
 * three heartbeat intervals in a row: after a database outage (or when the lease has just
 * moved here) every other replica's heartbeat looks stale until each has written its next one,
 * and their agents must not be marked disconnected for that.
 */
export function janitorJob(options: JanitorOptions, sweep = sweepDeadReplicas): LeasedJob {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | null = null;
  let workingSince: number | null = null;
  let sweeps = 0;
  const settled = async () => {
    if (workingSince === null) {
      await sql`select 1`.execute(options.store.db);
      workingSince = Date.now();
    }
    return Date.now() - workingSince >= SETTLE_INTERVALS * options.heartbeatMs;
  };
  const pass = () => {
    running ??= settled()
      .then((ready) =>
        ready ? sweep(options, options.clock.now(), sweeps++ % FULL_PASS_EVERY === 0) : undefined,
      )
      .catch((error) => {
        workingSince = null;
        options.log.warn({ err: error }, "janitor pass failed");
      })
      .finally(() => {
        running = null;
      });
  };
  return {
    name: "janitor",
    start() {
      workingSince = null;
      sweeps = 0;
      pass();
      timer = setInterval(pass, options.heartbeatMs);
      timer.unref();
    },
    async stop() {
      clearInterval(timer);
      timer = undefined;
      await running;
    },
  };
}

/** Heartbeat intervals of working database access before the janitor releases anyone's agents. */
const SETTLE_INTERVALS = 3;
