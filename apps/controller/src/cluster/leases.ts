/**
 * Cluster-wide jobs that must run once (command sweeps, the operations runner, the provider
 * reconcile, retention, the janitor) each run on the replica holding their lease: a row in
 * `leases` (name, holder, expires_at) taken or renewed with one conditional upsert — it
 * succeeds when the lease is free, expired, or already ours — and deleted on a clean close.
 *
 * Timing (from `replicaHeartbeatSec`, 5 s by default): renewed every interval, valid for three
 * (15 s). A holder that cannot renew stops its job once only one interval of its lease is left,
 * before anyone else may take it; a job whose holder died moves within ttl + one interval
 * (at most 20 s). A job stops on this replica as soon as a renewal finds another holder.
 *
 * With SQLite there is one replica: every lease is held from start to close and nothing is
 * written. The conditional upsert is portable SQL all the same (tested on both dialects).
 * Expiry times are on the cluster's clock (cluster-clock.ts: the database server's time, as
 * each replica measures it), not the replicas' own.
 */
import type { FastifyBaseLogger } from "fastify";
import type { Kysely } from "kysely";
import type { Dialect } from "../store/db.js";
import type { Database } from "../store/schema.js";
import type { ClusterClock } from "./cluster-clock.js";

/** A job that runs while this replica holds its lease. */
export interface LeasedJob {
  name: string;
  start(): void | Promise<void>;
  stop(): void | Promise<void>;
}

export interface LeasesOptions {
  db: Kysely<Database>;
  dialect: Dialect;
  /** This replica's id. */
  holder: string;
  ttlMs: number;
  renewMs: number;
  log: FastifyBaseLogger;
  /** Expiries are on the cluster's clock, so a replica whose own clock is off takes no one's lease. */
  clock: ClusterClock;
}

/**
 * Takes or renews `name` for `holder` until `now + ttlMs`; true when `holder` holds it now.
 * One statement: the update only applies when the lease is ours or has expired.
 */
export async function acquireLease(
  db: Kysely<Database>,
  name: string,
  holder: string,
  ttlMs: number,
  now = Date.now(),
): Promise<boolean> {
  const expiresAt = new Date(now + ttlMs).toISOString();
  const row = await db
    .insertInto("leases")
    .values({ name, holder, expires_at: expiresAt })
    .onConflict((oc) =>
      oc
        .column("name")
        .doUpdateSet((eb) => ({
          holder: eb.ref("excluded.holder"),
          expires_at: eb.ref("excluded.expires_at"),
        }))
        .where((eb) =>
          eb.or([
            eb("leases.holder", "=", eb.ref("excluded.holder")),
            eb("leases.expires_at", "<", new Date(now).toISOString()),
          ]),
        ),
    )
    .returning("holder")
    .executeTakeFirst();
  return row?.holder === holder;
}

/** Gives `name` up if `holder` still holds it. */
export async function releaseLease(db: Kysely<Database>, name: string, holder: string): Promise<void> {
  await db.deleteFrom("leases").where("name", "=", name).where("holder", "=", holder).execute();
}

export async function leaseHolder(
  db: Kysely<Database>,
  name: string,
): Promise<{ holder: string; expiresAt: string } | undefined> {
  const row = await db
    .selectFrom("leases")
    .select(["holder", "expires_at"])
    .where("name", "=", name)
    .executeTakeFirst();
  return row && { holder: row.holder, expiresAt: row.expires_at };
}

interface Slot {
  job: LeasedJob;
  /** Time (the cluster's clock) until which the lease is ours (from the last successful renewal). */
  heldUntil: number;
  running: boolean;
  /** Start/stop of this job, one after the other. */
  chain: Promise<void>;
}

export class Leases {
  private readonly slots = new Map<string, Slot>();
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | null = null;
  private renewing = true;
  private closed = false;

  constructor(private readonly options: LeasesOptions) {}

  get clustered(): boolean {
    return this.options.dialect === "postgres";
  }

  add(job: LeasedJob): void {
    if (this.slots.has(job.name)) throw new Error(`lease job ${job.name} added twice`);
    this.slots.set(job.name, { job, heldUntil: 0, running: false, chain: Promise.resolve() });
  }

  /** Whether this replica runs the job now. */
  held(name: string): boolean {
    return this.slots.get(name)?.running ?? false;
  }

  /** Takes what it can now (SQLite: everything) and then keeps renewing; resolves after the first round. */
  async start(): Promise<void> {
    if (!this.clustered) {
      for (const slot of this.slots.values()) this.transition(slot, true);
      await Promise.all([...this.slots.values()].map((s) => s.chain));
      return;
    }
    await this.tick();
    this.timer ??= setInterval(() => void this.tick(), this.options.renewMs);
    this.timer.unref();
  }

  /**
   * Stops renewing, as a replica whose database calls hang would: each job stops when its
   * lease is about to run out and another replica takes it over. For tests of takeover.
   */
  stopRenewing(): void {
    this.renewing = false;
  }

  /** Stops every job here and gives their leases up, so others take them over at once. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
    for (const slot of [...this.slots.values()].reverse()) this.transition(slot, false);
    await Promise.all([...this.slots.values()].map((s) => s.chain));
    if (!this.clustered || !this.renewing) return;
    for (const name of this.slots.keys()) {
      try {
        await releaseLease(this.options.db, name, this.options.holder);
      } catch (error) {
        this.options.log.warn({ err: error, lease: name }, "releasing a lease failed; it expires on its own");
      }
    }
  }

  private tick(): Promise<void> {
    this.ticking ??= this.renewAll().finally(() => {
      this.ticking = null;
    });
    return this.ticking;
  }

  private async renewAll(): Promise<void> {
    const { db, holder, ttlMs, renewMs, log } = this.options;
    for (const [name, slot] of this.slots) {
      if (this.closed) return;
      const now = this.options.clock.now();
      let mine: boolean | null = null;
      if (this.renewing) {
        try {
          mine = await acquireLease(db, name, holder, ttlMs, now);
        } catch (error) {
          if (slot.running) log.warn({ err: error, lease: name }, "renewing a lease failed");
        }
      }
      if (this.closed) return;
      if (mine === true) slot.heldUntil = now + ttlMs;
      // Unconfirmed: keep running only while more than one renewal interval of the lease is left.
      const keep = mine ?? this.options.clock.now() + renewMs < slot.heldUntil;
      if (slot.running && !keep)
        log.warn({ lease: name, replica: holder }, "lease lost; the job stops on this replica");
      this.transition(slot, keep);
    }
  }

  /** Starts or stops the slot's job (after any transition under way). */
  private transition(slot: Slot, run: boolean): void {
    slot.chain = slot.chain.then(async () => {
      if (run === slot.running) return;
      if (run && this.closed) return;
      try {
        if (run) await slot.job.start();
        else await slot.job.stop();
        slot.running = run;
      } catch (error) {
        this.options.log.error(
          { err: error, lease: slot.job.name },
          `${run ? "starting" : "stopping"} a leased job failed`,
        );
        // A job that failed to start is tried again at the next renewal; one that failed to
        // stop is taken as stopped.
        if (!run) slot.running = false;
      }
    });
  }
}
