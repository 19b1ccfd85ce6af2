/**
 * Small signals between replicas: PostgreSQL LISTEN/NOTIFY on one dedicated connection per
 * replica (never the pool: a pooled connection is handed back and its LISTEN goes with it).
 * A signal is a kind and ids only, e.g. `command.queued [cmd_…]`; receivers re-read the rows.
 * Sends are batched without waiting: what one event-loop turn sends goes together, and what
 * arrives while a send is in flight goes with the next one (so a quiet cluster signals at once
 * and a busy one in larger batches). Each batch is split into payloads below PostgreSQL's
 * 8000-byte limit (signal-payloads.ts), all sent in one round trip through the pool.
 *
 * A replica acts on its own changes in-process, as the single controller always did; its
 * signals are for the others, so it ignores its own echo: a replica's subscribers see each
 * signal of another replica once, and never their own replica's.
 *
 * Notifications sent while the listener connection is down are lost. When it drops, the
 * listener reconnects with backoff (every wait has a deadline) and then emits `resync`:
 * subscribers re-read what they care about from the tables. A self-NOTIFY probe at start
 * (and every `watchdogMs` after) proves notifications actually arrive: behind a PgBouncer in
 * transaction mode LISTEN "succeeds" and nothing ever comes, which start-up turns into a clear
 * error instead of a cluster that silently never routes anything.
 *
 * SQLite mode (one replica) uses LocalSignals: the same interface, nothing to tell anyone.
 */
import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { FastifyBaseLogger } from "fastify";
import pg from "pg";
import { databaseUnavailable, isConnectionError } from "../store/postgres-errors.js";
import { postgresTarget } from "../store/postgres-target.js";
import { decodePayload, encodePayloads } from "./signal-payloads.js";

export type SignalKind =
  /** Commands stored `queued` for agents the sender does not hold: their holder sends them. */
  | "command.queued"
  /** Commands that reached a final state: waiters elsewhere re-read them. */
  | "command.finished"
  /** Events were committed (no ids): event tailers read on. */
  | "events"
  /** VMs deleted: whoever holds their agent closes its socket. */
  | "vm.retired"
  /** Operations created: the replica that runs operations picks them up. */
  | "operation.created"
  /** Operations whose cancel was requested: the replica running one stops it. */
  | "operation.cancel"
  /** VMs whose next serving report the sender's rolling health gate waits for (their holder forwards it). */
  | "health.watch"
  /** VMs whose agent just reported serving, for a gate waiting on the sender's replica. */
  | "vm.serving"
  /** Stored policies changed (ids: policy names): reload them. */
  | "policy.changed";

export type SignalHandler = (ids: string[]) => void | Promise<void>;

export interface Signals {
  /** True when other replicas may exist (PostgreSQL mode). */
  readonly clustered: boolean;
  /** Queues a signal for the other replicas (batched; never throws). */
  send(kind: SignalKind, ids?: readonly string[]): void;
  on(kind: SignalKind, handler: SignalHandler): () => void;
  /** Called after the listener reconnected: signals may have been missed, re-read state. */
  onResync(handler: () => void | Promise<void>): () => void;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** One replica, nobody to tell: sends go nowhere and nothing ever arrives. */
export class LocalSignals implements Signals {
  readonly clustered = false;
  send(): void {}
  on(): () => void {
    return () => {};
  }
  onResync(): () => void {
    return () => {};
  }
  async start(): Promise<void> {}
  async close(): Promise<void> {}
}

export const SIGNAL_CHANNEL = "nbfleet";
const PROBE_KIND = "probe";
/** Ids waiting to be sent at most; beyond (the database is unreachable for long), new ones are dropped. */
const MAX_PENDING_IDS = 1_000_000;

export interface PgSignalsOptions {
  databaseUrl: string;
  /** This replica's id (its own echo is recognised by it). */
  origin: string;
  /** Sends the payloads on `channel` through the pool, in one round trip. */
  notify(channel: string, payloads: string[]): Promise<void>;
  log: FastifyBaseLogger;
  channel?: string;
  /** Sends are collected this long; 0 (the default): one event-loop turn. */
  batchMs?: number;
  /** How long a probe waits for its own notification (default 5 s). */
  probeTimeoutMs?: number;
  /** Connecting and LISTEN each get this long (default 10 s). */
  connectTimeoutMs?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** A self-probe this often proves the listener still hears (default 15 s; 0 = never). */
  watchdogMs?: number;
}

export class PgSignals implements Signals {
  readonly clustered = true;
  private client: pg.Client | undefined;
  private readonly handlers = new Map<string, Set<SignalHandler>>();
  private readonly resyncHandlers = new Set<() => void | Promise<void>>();
  private readonly probes = new Map<string, () => void>();
  private pending = new Map<string, Set<string>>();
  private pendingCount = 0;
  private batchTimer: NodeJS.Timeout | undefined;
  private flushQueued = false;
  private sending: Promise<void> = Promise.resolve();
  private sendFailures = 0;
  private watchdog: NodeJS.Timeout | undefined;
  private reconnecting: Promise<void> | undefined;
  private readonly closing = new AbortController();
  private readonly channel: string;
  private readonly batchMs: number;
  private readonly probeTimeoutMs: number;
  private readonly connectTimeoutMs: number;
  /** host:port/database, for messages. */
  private readonly address: string;
  /** Listener connections opened so far (the first at start); for logs and tests. */
  connections = 0;

  constructor(private readonly options: PgSignalsOptions) {
    this.channel = options.channel ?? SIGNAL_CHANNEL;
    this.batchMs = options.batchMs ?? 0;
    this.probeTimeoutMs = options.probeTimeoutMs ?? 5000;
    this.connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
    this.address = describeDatabase(options.databaseUrl);
  }

  /** Listens and proves with a probe that notifications arrive; throws a clear error when not. */
  async start(): Promise<void> {
    let arrived: boolean;
    try {
      await this.listen();
      arrived = await this.probe(true);
    } catch (error) {
      await this.endClient();
      // The database went away meanwhile: a start-up may wait for it (NBF_DATABASE_UNAVAILABLE).
      throw isConnectionError(error)
        ? databaseUnavailable(this.address.replace(/\/[^/]*$/, ""), error)
        : error;
    }
    if (!arrived) {
      await this.endClient();
      throw new Error(
        `LISTEN/NOTIFY does not work on the connection to ${this.address}: ` +
          `a notification this controller sent did not come back within ${this.probeTimeoutMs} ms. ` +
          "Replicas need PostgreSQL's LISTEN/NOTIFY to route commands and events between them; a " +
          "PgBouncer in transaction (or statement) pooling mode in front of PostgreSQL breaks it. " +
          "Connect the replicas to PostgreSQL directly, or through a pooler in session mode.",
      );
    }
    const every = this.options.watchdogMs ?? 15_000;
    if (every > 0) {
      this.watchdog = setInterval(() => void this.checkListener(), every);
      this.watchdog.unref();
    }
  }

  send(kind: SignalKind, ids: readonly string[] = []): void {
    if (this.closing.signal.aborted) return;
    let set = this.pending.get(kind);
    if (!set) {
      set = new Set();
      this.pending.set(kind, set);
    }
    for (const id of ids) {
      if (this.pendingCount >= MAX_PENDING_IDS) {
        this.options.log.error({ kind, dropped: ids.length }, "too many signals waiting to be sent; dropped");
        break;
      }
      if (!set.has(id)) {
        set.add(id);
        this.pendingCount++;
      }
    }
    if (this.batchTimer || this.flushQueued) return;
    if (this.batchMs > 0) this.batchTimer = setTimeout(() => this.flush(), this.batchMs);
    else {
      this.flushQueued = true;
      setImmediate(() => {
        this.flushQueued = false;
        // A failed send's backoff timer, set meanwhile, sends these too.
        if (!this.batchTimer) this.flush();
      });
    }
  }

  on(kind: SignalKind, handler: SignalHandler): () => void {
    let set = this.handlers.get(kind);
    if (!set) {
      set = new Set();
      this.handlers.set(kind, set);
    }
    set.add(handler);
    return () => set.delete(handler);
  }

  onResync(handler: () => void | Promise<void>): () => void {
    this.resyncHandlers.add(handler);
    return () => this.resyncHandlers.delete(handler);
  }

  /** Sends what is pending (up to 2 s more) and closes the listener. */
  async close(): Promise<void> {
    if (this.closing.signal.aborted) return;
    if (this.watchdog) clearInterval(this.watchdog);
    clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    if (this.pendingCount > 0 || this.pending.size > 0) this.flush();
    await Promise.race([this.sending, sleep(2000, undefined, { ref: false })]);
    this.closing.abort();
    for (const resolve of this.probes.values()) resolve();
    await this.endClient();
  }

  /** Drops the listener connection as if the network had (tests; the watchdog). */
  dropListener(): void {
    const client = this.client;
    if (client) this.dropped(client, new Error("listener dropped on purpose"));
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.options.databaseUrl,
      connectionTimeoutMillis: this.connectTimeoutMs,
      keepAlive: true,
      application_name: `nbfleet-signals ${this.options.origin}`,
    });
    client.on("notification", (message) => {
      if (message.channel === this.channel) this.receive(message.payload);
    });
    client.on("error", (error) => this.dropped(client, error));
    client.on("end", () => this.dropped(client, new Error("connection ended")));
    try {
      await client.connect();
      await withDeadline(client.query(`LISTEN "${this.channel}"`), this.connectTimeoutMs, "LISTEN");
    } catch (error) {
      client.removeAllListeners("end");
      client.on("error", () => {});
      await client.end().catch(() => {});
      throw error;
    }
    this.connections++;
    this.client = client;
  }

  private dropped(client: pg.Client, error: unknown): void {
    if (client !== this.client || this.closing.signal.aborted) return;
    this.client = undefined;
    client.removeAllListeners("end");
    client.on("error", () => {});
    void client.end().catch(() => {});
    this.options.log.warn(
      { err: error },
      "signal listener connection lost; reconnecting (notifications meanwhile are lost, state is re-read after)",
    );
    this.reconnecting ??= this.reconnect().finally(() => {
      this.reconnecting = undefined;
    });
  }

  private async reconnect(): Promise<void> {
    const min = this.options.reconnectMinMs ?? 100;
    const max = this.options.reconnectMaxMs ?? 5000;
    for (let attempt = 0; !this.closing.signal.aborted; attempt++) {
      const cap = Math.min(max, min * 2 ** Math.min(attempt, 20));
      try {
        await sleep(Math.max(min, Math.random() * cap), undefined, { signal: this.closing.signal });
      } catch {
        return;
      }
      try {
        await this.listen();
      } catch (error) {
        this.options.log.warn({ err: error, attempt: attempt + 1 }, "signal listener reconnect failed");
        continue;
      }
      if (this.closing.signal.aborted) {
        await this.endClient();
        return;
      }
      this.options.log.info({ attempts: attempt + 1 }, "signal listener reconnected; re-reading state");
      await this.resync();
      return;
    }
  }

  private async resync(): Promise<void> {
    for (const handler of this.resyncHandlers) {
      try {
        await handler();
      } catch (error) {
        this.options.log.error({ err: error }, "resync after a listener reconnect failed");
      }
    }
  }

  /**
   * Whether a notification sent now through the pool comes back on the listener in time. A
   * failed send counts as "no" unless `rethrow` (start-up tells the two apart).
   */
  private async probe(rethrow = false): Promise<boolean> {
    const token = randomBytes(8).toString("hex");
    let timer: NodeJS.Timeout | undefined;
    const arrived = new Promise<boolean>((resolve) => {
      this.probes.set(token, () => resolve(true));
      timer = setTimeout(() => resolve(false), this.probeTimeoutMs);
    });
    try {
      await this.options.notify(this.channel, encodePayloads(this.options.origin, PROBE_KIND, [token]));
      return await arrived;
    } catch (error) {
      if (rethrow) throw error;
      this.options.log.warn({ err: error }, "signal probe could not be sent");
      return false;
    } finally {
      clearTimeout(timer);
      this.probes.delete(token);
    }
  }

  private async checkListener(): Promise<void> {
    const client = this.client;
    if (!client || this.reconnecting) return;
    if (await this.probe()) return;
    if (this.client === client) this.dropped(client, new Error("the self-probe did not come back"));
  }

  private receive(payload: string | undefined): void {
    const message = decodePayload(payload);
    if (!message) return;
    if (message.origin === this.options.origin) {
      if (message.kind === PROBE_KIND) for (const id of message.ids) this.probes.get(id)?.();
      return;
    }
    const handlers = this.handlers.get(message.kind);
    if (!handlers) return;
    for (const handler of handlers) {
      try {
        const done = handler(message.ids);
        if (done) done.catch((error) => this.handlerFailed(message.kind, error));
      } catch (error) {
        this.handlerFailed(message.kind, error);
      }
    }
  }

  private handlerFailed(kind: string, error: unknown): void {
    this.options.log.error({ err: error, kind }, "signal handler failed");
  }

  /**
   * Sends everything pending; one send at a time, in order. The batch is taken when its turn to
   * be sent comes, so what piles up during a send goes out together next. A failed send is
   * retried with backoff.
   */
  private flush(): void {
    clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    this.sending = this.sending.then(async () => {
      const batch = this.pending;
      this.pending = new Map();
      this.pendingCount = 0;
      const payloads: string[] = [];
      for (const [kind, ids] of batch) payloads.push(...encodePayloads(this.options.origin, kind, [...ids]));
      if (payloads.length === 0) return;
      try {
        await this.options.notify(this.channel, payloads);
        this.sendFailures = 0;
      } catch (error) {
        if (this.closing.signal.aborted) return;
        this.sendFailures++;
        this.options.log.warn({ err: error, payloads: payloads.length }, "sending signals failed; retrying");
        clearTimeout(this.batchTimer);
        this.batchTimer = setTimeout(() => this.flush(), Math.min(5000, 100 * 2 ** this.sendFailures));
        for (const [kind, ids] of batch) this.send(kind as SignalKind, [...ids]);
      }
    });
  }

  private async endClient(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (!client) return;
    client.removeAllListeners("end");
    client.on("error", () => {});
    await client.end().catch(() => {});
  }
}

async function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** host:port/database, never the password. */
function describeDatabase(url: string): string {
  try {
    const { address, database } = postgresTarget(url);
    return `${address}/${database}`;
  } catch {
    return "the database";
  }
}
