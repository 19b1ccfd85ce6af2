import { setTimeout as sleep } from "node:timers/promises";
import { startTestController } from "@nbfleet/testkit/controller";
import { startNotifyDroppingProxy } from "@nbfleet/testkit/notify-dropping-proxy";
import { freshDatabaseUrl } from "@nbfleet/testkit/postgres-database";
import type { FastifyBaseLogger } from "fastify";
import pg from "pg";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { newId } from "../store/ids.js";
import { PgSignals, type PgSignalsOptions } from "./signals.js";

const quiet = { info() {}, warn() {}, error() {}, debug() {} } as unknown as FastifyBaseLogger;

let databaseUrl: string;
let admin: pg.Client;
const opened: Array<{ close(): Promise<unknown> }> = [];

beforeAll(async () => {
  databaseUrl = await freshDatabaseUrl();
  admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  opened.push({ close: () => admin.end() });
  return async () => {
    for (const item of opened.reverse()) await item.close();
  };
});

const alive: PgSignals[] = [];
afterEach(async () => {
  for (const signals of alive.splice(0)) await signals.close();
});

/** A replica's signals; `payloads` records every payload it sends. */
function replica(options: Partial<PgSignalsOptions> = {}, url = databaseUrl) {
  const payloads: string[] = [];
  const signals = new PgSignals({
    databaseUrl: url,
    origin: newId("rep"),
    log: quiet,
    notify: async (channel, batch) => {
      payloads.push(...batch);
      await admin.query("select pg_notify($1, p) from unnest($2::text[]) as p", [channel, batch]);
    },
    reconnectMinMs: 20,
    reconnectMaxMs: 200,
    watchdogMs: 0,
    ...options,
  });
  alive.push(signals);
  return { signals, payloads };
}

function collect(signals: PgSignals, kind: Parameters<PgSignals["on"]>[0]) {
  const calls: string[][] = [];
  signals.on(kind, (ids) => {
    calls.push(ids);
  });
  return calls;
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

describe("signals between replicas (LISTEN/NOTIFY)", () => {
  it("reaches the other replicas once, batched, and never the sender's own subscribers", async () => {
    const a = replica();
    const b = replica();
    const c = replica();
    await Promise.all([a.signals.start(), b.signals.start(), c.signals.start()]);
    const atA = collect(a.signals, "command.finished");
    const atB = collect(b.signals, "command.finished");
    const atC = collect(c.signals, "command.finished");
    const probes = a.payloads.length;
    // Sent in one turn (and one repeated): one payload, the ids once.
    a.signals.send("command.finished", ["cmd_1", "cmd_2"]);
    a.signals.send("command.finished", ["cmd_2", "cmd_3"]);
    await until("B and C to hear", () => atB.length > 0 && atC.length > 0);
    await sleep(100);
    expect(atB).toEqual([["cmd_1", "cmd_2", "cmd_3"]]);
    expect(atC).toEqual([["cmd_1", "cmd_2", "cmd_3"]]);
    expect(atA).toEqual([]);
    expect(a.payloads.length - probes).toBe(1);
  });

  it("sends at once when idle, and gathers what arrives during a send into the next one", async () => {
    let release: () => void = () => {};
    const sends: string[][] = [];
    const a = replica({
      notify: async (channel, batch) => {
        sends.push(batch);
        // The second send is held until the test lets it go: everything sent meanwhile piles up.
        if (sends.length === 2)
          await new Promise<void>((resolve) => {
            release = resolve;
          });
        await admin.query("select pg_notify($1, p) from unnest($2::text[]) as p", [channel, batch]);
      },
    });
    const b = replica();
    await Promise.all([a.signals.start(), b.signals.start()]);
    const atB = collect(b.signals, "command.finished");
    sends.length = 1; // the start-up probe
    a.signals.send("command.finished", ["cmd_1"]);
    await until("the first send to be under way", () => sends.length === 2);
    for (const id of ["cmd_2", "cmd_3", "cmd_4"]) {
      a.signals.send("command.finished", [id]);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await sleep(50);
    expect(sends.length).toBe(2);
    release();
    await until("B to hear all four", () => atB.flat().length === 4);
    expect(atB).toEqual([["cmd_1"], ["cmd_2", "cmd_3", "cmd_4"]]);
    expect(sends.length).toBe(3);
  });

  it("backs off after a failed send, and sends what failed with what came later", async () => {
    const attempts: number[] = [];
    let failures = 1;
    const a = replica({
      notify: async (channel, batch) => {
        attempts.push(Date.now());
        if (batch.some((p) => p.includes("cmd_")) && failures-- > 0) throw new Error("connection reset");
        await admin.query("select pg_notify($1, p) from unnest($2::text[]) as p", [channel, batch]);
      },
    });
    const b = replica();
    await Promise.all([a.signals.start(), b.signals.start()]);
    const atB = collect(b.signals, "command.finished");
    attempts.length = 0;
    a.signals.send("command.finished", ["cmd_1"]);
    await until("the failed attempt", () => attempts.length === 1);
    a.signals.send("command.finished", ["cmd_2"]);
    await until("B to hear both", () => atB.flat().length === 2);
    expect(atB.flat().sort()).toEqual(["cmd_1", "cmd_2"]);
    expect(attempts.length).toBe(2);
    // The retry waited for its backoff (100 ms after one failure), not for the next turn.
    expect(attempts[1]! - attempts[0]!).toBeGreaterThanOrEqual(90);
  });

  it("carries 10,000 ids through PostgreSQL in payloads below 8000 bytes, none lost", async () => {
    const a = replica();
    const b = replica();
    await Promise.all([a.signals.start(), b.signals.start()]);
    const atB = collect(b.signals, "command.queued");
    const ids = Array.from({ length: 10_000 }, () => newId("cmd"));
    const before = a.payloads.length;
    a.signals.send("command.queued", ids);
    await until("every id", () => atB.flat().length >= ids.length);
    const sent = a.payloads.slice(before);
    expect(sent.length).toBe(atB.length);
    expect(sent.length).toBeGreaterThan(10);
    for (const payload of sent) expect(Buffer.byteLength(payload)).toBeLessThan(8000);
    expect(atB.flat()).toEqual(ids);
  });

  it("reconnects a killed listener with backoff, then resyncs; later signals arrive again", async () => {
    const a = replica();
    const b = replica();
    await Promise.all([a.signals.start(), b.signals.start()]);
    const resyncs: number[] = [];
    b.signals.onResync(() => {
      resyncs.push(Date.now());
    });
    const atB = collect(b.signals, "vm.retired");
    const killed = await admin.query(
      "select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1",
      [`nbfleet-signals ${(b.signals as unknown as { options: PgSignalsOptions }).options.origin}`],
    );
    expect(killed.rowCount).toBe(1);
    await until("the resync", () => resyncs.length === 1);
    expect(b.signals.connections).toBe(2);
    a.signals.send("vm.retired", ["vm-after"]);
    await until("a signal after the reconnect", () => atB.length > 0);
    expect(atB).toEqual([["vm-after"]]);
  });

  it("keeps retrying while PostgreSQL refuses connections, each attempt with a deadline", async () => {
    const failures: string[] = [];
    const log = {
      ...quiet,
      warn: (_: unknown, message: string) => failures.push(message),
    } as unknown as FastifyBaseLogger;
    const a = replica({ log });
    await a.signals.start();
    const resyncs: number[] = [];
    a.signals.onResync(() => {
      resyncs.push(1);
    });
    // The listener's database refuses new connections for a while.
    const url = new URL(databaseUrl);
    const name = url.pathname.slice(1);
    url.pathname = "/postgres";
    const server = new pg.Client({ connectionString: url.toString() });
    await server.connect();
    await server.query(`alter database "${name}" allow_connections false`);
    try {
      a.signals.dropListener();
      await sleep(600);
      expect(resyncs).toEqual([]);
      // Backoff from 20 ms up to 200 ms: several refused attempts in 600 ms, not hundreds.
      const refused = failures.filter((m) => m === "signal listener reconnect failed").length;
      expect(refused).toBeGreaterThanOrEqual(2);
      expect(refused).toBeLessThan(30);
    } finally {
      await server.query(`alter database "${name}" allow_connections true`);
      await server.end();
    }
    await until("the resync once connections are allowed", () => resyncs.length === 1);
    expect(a.signals.connections).toBe(2);
  });

  it("fails to start with a clear error where notifications never arrive (as behind a transaction-mode PgBouncer)", async () => {
    const proxy = await startNotifyDroppingProxy(databaseUrl);
    opened.push(proxy);
    const a = replica({ probeTimeoutMs: 1000 }, proxy.url);
    const started = Date.now();
    await expect(a.signals.start()).rejects.toThrow(
      /LISTEN\/NOTIFY does not work on the connection to 127\.0\.0\.1:\d+\/t_\w+: .*did not come back within 1000 ms.*PgBouncer in transaction .*session mode/s,
    );
    expect(Date.now() - started).toBeLessThan(5000);
    expect(proxy.dropped()).toBe(1);
    // The same database, connected directly, works.
    const direct = replica({ probeTimeoutMs: 1000 });
    await direct.signals.start();
  });

  it("stops a controller's start-up with that error, and leaves nothing running", async () => {
    const proxy = await startNotifyDroppingProxy(databaseUrl);
    opened.push(proxy);
    await expect(startTestController({ settings: { databaseUrl: proxy.url } })).rejects.toThrow(
      /LISTEN\/NOTIFY does not work .*did not come back within 5000 ms.*directly, or through a pooler in session mode/s,
    );
    // Nothing of the failed start holds a connection open (the listener included).
    await sleep(200);
    const left = await admin.query(
      "select count(*)::int as n from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
    );
    expect(left.rows[0].n).toBe(0);
  }, 20_000);
});
