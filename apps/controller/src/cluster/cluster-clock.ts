/**
 * The time replicas compare with each other: this process's clock corrected by its offset from
 * the database server's clock. Heartbeats and who counts as dead, lease expiries, event ids
 * (the event streams' order and their settle window), relay signatures, command and operation
 * times all use it, so one
 * replica whose clock is off (no time sync on its machine) neither looks dead, nor takes the
 * others' leases, nor has its events left out of the live streams.
 *
 * The offset is measured at start and at every heartbeat with one query of the database's
 * `clock_timestamp()`: offset = database time − the local midpoint of the round trip. Of the last
 * SAMPLES measurements the one with the shortest round trip is used (its error is at most half
 * that round trip), so a measurement slowed by a busy machine does not move it; a measurement
 * that no earlier one can agree with (a clock was stepped) replaces them all. With SQLite there
 * is one replica and nothing to agree on: the offset stays 0.
 *
 * An offset beyond WARN_OFFSET_MS is logged as a warning (once, until it comes back): nbfleet
 * corrects for it, but the machine's logs are still on its own clock.
 */
import type { FastifyBaseLogger } from "fastify";
import { type Kysely, sql } from "kysely";
import type { Dialect } from "../store/db.js";
import type { Database } from "../store/schema.js";

const SAMPLES = 8;
/** What two clocks may drift apart between measurements (ms): far above real drift, far below a step. */
const DRIFT_MS = 5;
export const WARN_OFFSET_MS = 1000;

export interface ClusterClock {
  /** Milliseconds since the epoch on the cluster's clock. */
  now(): number;
  /** This process's clock ahead of (positive) or behind the cluster's. */
  readonly offsetMs: number;
  /** Measures the offset once more (a failure changes nothing and throws). */
  measure(): Promise<void>;
}

interface Sample {
  offsetMs: number;
  roundTripMs: number;
}

export interface DatabaseClockOptions {
  db: Kysely<Database>;
  dialect: Dialect;
  log: FastifyBaseLogger;
  /** This process's clock (tests give a skewed one). */
  local?: () => number;
}

export class DatabaseClock implements ClusterClock {
  private readonly samples: Sample[] = [];
  private correctionMs = 0;
  private warned = false;
  private readonly local: () => number;

  constructor(private readonly options: DatabaseClockOptions) {
    this.local = options.local ?? Date.now;
  }

  now(): number {
    return this.local() + this.correctionMs;
  }

  get offsetMs(): number {
    return -this.correctionMs;
  }

  /** One measurement against the database server; a failed one changes nothing and throws. */
  async measure(): Promise<void> {
    if (this.options.dialect !== "postgres") return;
    const sent = this.local();
    const { rows } = await sql<{
      ms: number;
    }>`select (extract(epoch from clock_timestamp()) * 1000)::float8 as ms`.execute(this.options.db);
    const received = this.local();
    const databaseMs = Number(rows[0]?.ms);
    if (!Number.isFinite(databaseMs)) throw new Error("the database server did not say what time it is");
    const latest = { offsetMs: databaseMs - (sent + received) / 2, roundTripMs: received - sent };
    // Two measurements of one offset differ by at most half of each round trip: beyond that, a
    // clock was stepped (NTP, a resumed VM) and the older measurements are void.
    const stepped = this.samples.some(
      (s) => Math.abs(s.offsetMs - latest.offsetMs) > (s.roundTripMs + latest.roundTripMs) / 2 + DRIFT_MS,
    );
    if (stepped) this.samples.length = 0;
    this.samples.push(latest);
    if (this.samples.length > SAMPLES) this.samples.shift();
    const best = this.samples.reduce((a, b) => (b.roundTripMs < a.roundTripMs ? b : a));
    this.correctionMs = Math.round(best.offsetMs);
    this.report();
  }

  private report(): void {
    const off = Math.abs(this.correctionMs) > WARN_OFFSET_MS;
    if (off && !this.warned) {
      const seconds = (Math.abs(this.correctionMs) / 1000).toFixed(1);
      this.options.log.warn(
        { clockOffsetMs: this.offsetMs },
        `this machine's clock is ${seconds} s ${this.correctionMs < 0 ? "ahead of" : "behind"} the database server's: the replicas agree on the database's time, but fix this machine's time sync (NTP); its logs are off`,
      );
    } else if (!off && this.warned) {
      this.options.log.info(
        { clockOffsetMs: this.offsetMs },
        "this machine's clock agrees with the database server's again",
      );
    }
    this.warned = off;
  }
}

/** This machine's clock as it is, for tests of the parts that take a clock (a controller, SQLite or not, uses DatabaseClock). */
export const localClock: ClusterClock = { now: () => Date.now(), offsetMs: 0, measure: async () => {} };
