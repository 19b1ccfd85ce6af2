/**
 * Where `GET /v1/events` streams come from. SQLite mode (one replica): the in-process bus, as
 * always (busFeed). PostgreSQL mode: the events table, read by one EventTail per replica, so
 * every stream on every replica sees every replica's events in one order (by id).
 *
 * Event ids sort by the time they were made, on the cluster's clock (store/ids.ts,
 * cluster-clock.ts), but each replica writes its events
 * behind (store/write-behind.ts), so an event can be committed a little after a newer one of
 * another replica. The tail therefore reads only up to a settle point, ids older than
 * now − `settleMs`, in id order. An event whose write failed for a while (a database outage)
 * is given a fresh id when it is finally written (WriteBehind.restampEventsAfter); one whose
 * single commit takes longer than the window is stored but not streamed live. (A replica's own
 * clock may be off: ids are made on the cluster's clock, the database server's.) The window is also the live delay every
 * stream pays. The tail reads when an `events` signal arrives (a
 * replica committed events; read again once they have settled), and every `pollMs` regardless.
 */
import type { FastifyBaseLogger } from "fastify";
import type { EventListener, FleetEvent } from "../events/bus.js";
import type { EventBus } from "../events/bus.js";
import type { EventsRepo } from "../store/events-repo.js";
import { eventIdBound } from "../store/ids.js";
import type { WriteBehind } from "../store/write-behind.js";
import type { ClusterClock } from "./cluster-clock.js";

export interface EventFeed {
  subscribe(listener: EventListener): () => void;
  /**
   * Every event with an id up to this one has been handed to subscribers, or never will be; a
   * replay reads the store up to it and then follows the subscription. Undefined: no bound.
   */
  position(): string | undefined;
  /** This replica's pending events into the store (before a replay reads it). */
  flush(): Promise<void>;
  close(): void;
}

/** The single controller's feed: the in-process bus, the store flushed before a replay. */
export function busFeed(bus: EventBus, writer: WriteBehind): EventFeed {
  return {
    subscribe: (listener) => bus.subscribe(listener),
    position: () => undefined,
    flush: () => writer.flush(),
    close: () => {},
  };
}

const PAGE = 500;

export interface EventTailOptions {
  events: EventsRepo;
  writer: WriteBehind;
  /** Only events older than this are read (see above). */
  settleMs: number;
  /** Read at least this often while anyone listens. */
  pollMs: number;
  log: FastifyBaseLogger;
  /** The clock event ids are made by (cluster-clock.ts). */
  clock: ClusterClock;
}

export class EventTail implements EventFeed {
  private readonly listeners = new Set<EventListener>();
  private cursor = "";
  private poller: NodeJS.Timeout | undefined;
  private settleTimer: NodeJS.Timeout | undefined;
  /** A read is due once this time has passed (events committed by then have settled). */
  private settleDue = 0;
  private reading: Promise<void> | undefined;
  private again = false;
  private closed = false;
  /** Bumped when the tail starts over (a first subscriber after none): older reads are void. */
  private generation = 0;

  constructor(private readonly options: EventTailOptions) {}

  get settleMs(): number {
    return this.options.settleMs;
  }

  subscribe(listener: EventListener): () => void {
    if (this.listeners.size === 0) this.begin();
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
      if (this.listeners.size === 0) this.end();
    };
  }

  position(): string {
    return this.cursor;
  }

  flush(): Promise<void> {
    return this.options.writer.flush();
  }

  /** Events were committed (here or on another replica): read now, and once they have settled. */
  wake(): void {
    if (this.listeners.size === 0 || this.closed) return;
    void this.read();
    const due = Date.now() + this.options.settleMs + 5;
    if (due <= this.settleDue && this.settleTimer) return;
    this.settleDue = due;
    if (!this.settleTimer) this.armSettle();
  }

  close(): void {
    this.closed = true;
    this.end();
  }

  private armSettle(): void {
    this.settleTimer = setTimeout(
      () => {
        this.settleTimer = undefined;
        void this.read();
        if (this.settleDue > Date.now()) this.armSettle();
      },
      Math.max(1, this.settleDue - Date.now()),
    );
    this.settleTimer.unref();
  }

  private begin(): void {
    // A new live stream starts from now (settled); its replay, if any, reads the store up to here.
    this.generation++;
    this.cursor = eventIdBound(this.options.clock.now() - this.options.settleMs);
    this.poller = setInterval(() => void this.read(), this.options.pollMs);
    this.poller.unref();
  }

  private end(): void {
    if (this.poller) clearInterval(this.poller);
    if (this.settleTimer) clearTimeout(this.settleTimer);
    this.poller = undefined;
    this.settleTimer = undefined;
  }

  /** One read at a time; a read asked for meanwhile runs right after. */
  private read(): Promise<void> {
    if (this.reading) {
      this.again = true;
      return this.reading;
    }
    this.reading = (async () => {
      do {
        this.again = false;
        try {
          await this.readSettled();
        } catch (error) {
          this.options.log.warn({ err: error }, "reading events for the event streams failed; retrying");
          break;
        }
      } while (this.again && this.listeners.size > 0);
    })().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  private async readSettled(): Promise<void> {
    if (this.listeners.size === 0) return;
    const generation = this.generation;
    const bound = eventIdBound(this.options.clock.now() - this.options.settleMs);
    for (;;) {
      const page = await this.options.events.list({ after: this.cursor, through: bound, limit: PAGE });
      if (generation !== this.generation) return;
      for (const event of page) {
        this.cursor = event.id;
        this.deliver(event);
      }
      if (page.length < PAGE) break;
    }
    if (bound > this.cursor) this.cursor = bound;
  }

  private deliver(event: FleetEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.options.log.error({ err: error }, "event stream listener failed");
      }
    }
  }
}
