/**
 * Whether PostgreSQL answers, known at all times without waiting on it: a probe (`select 1`
 * on a connection of its own, so a busy pool never looks like an outage) every `intervalMs`,
 * and at once when a query meets a connection error. `/healthz` reads the state; the pool
 * refuses work at once while it is `unreachable`; `onChange` fires once per change of state
 * (so the log gets one line per outage, not one per failed query).
 */
import { describeCause } from "./postgres-errors.js";

export interface DatabaseState {
  status: "ok" | "unreachable";
  /** host:port of the server. */
  address: string;
  /** The cause while unreachable, e.g. "refused the connection (ECONNREFUSED)". */
  error?: string;
  /** When the status last changed. */
  since: string;
}

/** The part of `pg.Client` the probe uses. */
export interface ProbeClient {
  connect(): Promise<unknown>;
  query(sql: string): Promise<unknown>;
  end(): Promise<void>;
  on(event: "error", listener: (error: Error) => void): unknown;
}

export interface DatabaseMonitorOptions {
  address: string;
  /** A new, unconnected client for the probe's own connection. */
  client: () => ProbeClient;
  /** Probe period (default 2 s): how soon `/healthz` sees an outage and the end of one. */
  intervalMs?: number;
  /** A probe slower than this counts as a failure (default 5 s). */
  timeoutMs?: number;
  onChange?: (state: DatabaseState) => void;
}

class ProbeTimeout extends Error {}

export class DatabaseMonitor {
  private current: DatabaseState;
  private client: ProbeClient | undefined;
  private timer: NodeJS.Timeout | undefined;
  private probing: Promise<void> | undefined;
  private stopped = false;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;

  constructor(private readonly options: DatabaseMonitorOptions) {
    this.intervalMs = options.intervalMs ?? 2000;
    this.timeoutMs = options.timeoutMs ?? 5000;
    this.current = { status: "ok", address: options.address, since: new Date().toISOString() };
  }

  get state(): DatabaseState {
    return this.current;
  }

  start(): void {
    this.arm();
  }

  /** A query met a connection error: probe now rather than at the next tick. */
  suspect(): void {
    if (!this.stopped) void this.probe();
  }

  /** Probes now (or joins the probe under way); resolves with the state after it. */
  probe(): Promise<DatabaseState> {
    this.probing ??= this.runProbe().finally(() => {
      this.probing = undefined;
      this.arm();
    });
    return this.probing.then(() => this.current);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.probing;
    await this.dropClient();
  }

  private arm(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.probe(), this.intervalMs);
    this.timer.unref();
  }

  private async runProbe(): Promise<void> {
    const reused = this.client !== undefined;
    try {
      await this.selectOne();
      this.set({ status: "ok" });
    } catch (first) {
      void this.dropClient();
      // A connection that served earlier may just have been cut by a server restart: one try
      // on a new connection before calling the database unreachable (not after a silence: that
      // would double the time an outage goes unnoticed).
      if (reused && !this.stopped && !(first instanceof ProbeTimeout)) {
        try {
          await this.selectOne();
          this.set({ status: "ok" });
          return;
        } catch (second) {
          void this.dropClient();
          this.set({ status: "unreachable", error: describeCause(second) });
          return;
        }
      }
      this.set({ status: "unreachable", error: describeCause(first) });
    }
  }

  private async selectOne(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new ProbeTimeout(`no answer within ${this.timeoutMs / 1000} s (connection timeout)`)),
        this.timeoutMs,
      );
    });
    try {
      await Promise.race([this.query(), deadline]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async query(): Promise<void> {
    if (!this.client) {
      const client = this.options.client();
      // Without a listener, the error of a connection the server ends would end the process.
      client.on("error", () => {
        if (this.client === client) this.client = undefined;
        this.suspect();
      });
      this.client = client;
      await client.connect();
    }
    await this.client.query("select 1");
  }

  /** Not awaited: ending a connection to a server that is gone must not hold the probe up. */
  private dropClient(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    const ended = client?.end().catch(() => {}) ?? Promise.resolve();
    return Promise.race([ended, new Promise<void>((resolve) => setTimeout(resolve, 1000).unref())]);
  }

  private set(next: { status: DatabaseState["status"]; error?: string }): void {
    if (this.stopped) return;
    const changed = next.status !== this.current.status;
    this.current = {
      status: next.status,
      address: this.options.address,
      ...(next.error !== undefined ? { error: next.error } : {}),
      since: changed ? new Date().toISOString() : this.current.since,
    };
    if (changed) this.options.onChange?.(this.current);
  }
}
