import { setTimeout as sleep } from "node:timers/promises";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { STORE_DIALECTS, type StoreDialect, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { eventually } from "@nbfleet/testkit/wait";
import { sql } from "kysely";
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { newId } from "./ids.js";
import type { EventsTable } from "./schema.js";
import { type Store, type StoreOptions, openStore } from "./store.js";
import { neverConnectedStatus } from "./vms-repo.js";
import type { WriteBehindHealth } from "./write-behind.js";

const stores: Store[] = [];
let controller: TestController | undefined;
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
  await controller?.close();
  controller = undefined;
});

async function freshStore(dialect: StoreDialect, options: Partial<StoreOptions> = {}): Promise<Store> {
  const store = await openStore({
    ...(await freshStoreLocation(dialect, "nbf-write-behind-")),
    flushMs: 10_000,
    flushMaxItems: 100_000,
    retry: { retryMinMs: 20, retryMaxMs: 200, closeTimeoutMs: 1000 },
    ...options,
  });
  stores.push(store);
  return store;
}

/** A real write failure: a trigger that aborts every insert into `events` while the switch is on. */
async function installFailingTrigger(store: Store): Promise<(on: boolean) => Promise<void>> {
  await sql`create table test_switch (fail integer not null)`.execute(store.db);
  await sql`insert into test_switch values (0)`.execute(store.db);
  if (store.dialect === "sqlite") {
    await sql`create trigger test_fail_events before insert on events
      when (select fail from test_switch) = 1
      begin select raise(abort, 'injected write failure'); end`.execute(store.db);
  } else {
    await sql`create function test_fail_events() returns trigger language plpgsql as $$
      begin
        if (select fail from test_switch) = 1 then raise exception 'injected write failure'; end if;
        return new;
      end $$`.execute(store.db);
    await sql`create trigger test_fail_events before insert on events
      for each row execute function test_fail_events()`.execute(store.db);
  }
  return async (on) => {
    await sql`update test_switch set fail = ${on ? 1 : 0}`.execute(store.db);
  };
}

/**
 * Makes the database refuse writes: SQLite's `query_only` on its one connection; on PostgreSQL,
 * read-only transactions by default (as on a standby after a failover) for every new
 * connection, the pool's current ones ended so that it opens new ones.
 */
async function setReadOnly(store: Store, databaseUrl: string | undefined, on: boolean): Promise<void> {
  if (!databaseUrl) {
    await sql`pragma query_only = ${sql.raw(on ? "1" : "0")}`.execute(store.db);
    return;
  }
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  try {
    await admin.query("set default_transaction_read_only = off");
    const name = (await admin.query<{ name: string }>("select current_database() as name")).rows[0]!.name;
    await admin.query(`alter database "${name}" set default_transaction_read_only = ${on ? "on" : "off"}`);
    await admin.query(
      "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()",
    );
  } finally {
    await admin.end();
  }
}

function event(message: string): EventsTable {
  return {
    id: newId("evt"),
    at: new Date().toISOString(),
    vm_name: null,
    source: "controller",
    kind: "test.event",
    level: "info",
    message,
    data: null,
  };
}

async function storedEvents(store: Store): Promise<string[]> {
  const rows = await store.db
    .selectFrom("events")
    .select("message")
    .where("kind", "=", "test.event")
    .execute();
  return rows.map((r) => r.message).sort();
}

describe.each(STORE_DIALECTS)("write-behind buffer on %s", (dialect) => {
  it("keeps rows of a failed transaction and writes them all once writes succeed again", async () => {
    const errors: WriteBehindHealth[] = [];
    let recoveredAfter = 0;
    const store = await freshStore(dialect, {
      onError: (_error, health) => errors.push(health),
      onRecovered: (failures) => {
        recoveredAfter = failures;
      },
    });
    const setFailing = await installFailingTrigger(store);
    await setFailing(true);

    const now = new Date().toISOString();
    for (let i = 0; i < 300; i++) store.writer.appendEvent(event(`e${String(i).padStart(3, "0")}`));
    for (let i = 0; i < 5; i++) {
      store.writer.putStatus({ ...neverConnectedStatus(`vm-${i}`, now), health: "unhealthy" });
    }
    await store.writer.flush();

    const degraded = store.writer.health();
    expect(degraded).toMatchObject({ status: "degraded", pendingRows: 305, failures: 1 });
    expect(degraded.lastError).toContain("injected write failure");
    expect(errors[0]).toMatchObject({ status: "degraded", pendingRows: 305 });
    // The failed transaction wrote nothing: the status rows in it rolled back too.
    expect(await storedEvents(store)).toEqual([]);
    expect(await store.db.selectFrom("vm_status").selectAll().execute()).toEqual([]);

    // A newer status for a VM while its older one waits for the retry replaces it.
    store.writer.putStatus({ ...neverConnectedStatus("vm-2", now), health: "healthy" });
    store.writer.appendEvent(event("e300"));
    await eventually(async () => store.writer.health().failures >= 2, Boolean, 5000);
    expect(store.writer.health().pendingRows).toBe(306);

    await setFailing(false);
    await eventually(async () => store.writer.health().status === "ok", Boolean, 5000);
    expect(store.writer.pending).toBe(0);
    expect(recoveredAfter).toBeGreaterThanOrEqual(2);
    const expected = Array.from({ length: 301 }, (_, i) => `e${String(i).padStart(3, "0")}`);
    expect(await storedEvents(store)).toEqual(expected);
    const statuses = await store.db.selectFrom("vm_status").select(["vm_name", "health"]).execute();
    expect(Object.fromEntries(statuses.map((s) => [s.vm_name, s.health]))).toEqual({
      "vm-0": "unhealthy",
      "vm-1": "unhealthy",
      "vm-2": "healthy",
      "vm-3": "unhealthy",
      "vm-4": "unhealthy",
    });
  });

  it("flushChanges writes pending status changes at once and leaves routine refreshes to their timer", async () => {
    const store = await freshStore(dialect);
    const now = new Date().toISOString();
    const stored = async () =>
      Object.fromEntries(
        (await store.db.selectFrom("vm_status").select(["vm_name", "health"]).execute()).map((s) => [
          s.vm_name,
          s.health,
        ]),
      );
    store.writer.putStatus({ ...neverConnectedStatus("refreshed", now), health: "healthy" }, false);
    store.writer.appendEvent(event("e1"));
    await store.writer.flushChanges();
    expect(await stored()).toEqual({});
    expect(store.writer.pending).toBe(2);

    // A change, then a routine refresh of the same VM before it is written: the change is in it.
    store.writer.putStatus({ ...neverConnectedStatus("changed", now), health: "unhealthy" }, true);
    store.writer.putStatus({ ...neverConnectedStatus("changed", now), health: "unhealthy" }, false);
    await store.writer.flushChanges();
    expect(await stored()).toMatchObject({ changed: "unhealthy" });
    expect(store.writer.pending).toBe(0);

    // Nothing changed since: nothing to wait for, even with a refresh pending.
    store.writer.putStatus({ ...neverConnectedStatus("refreshed", now), health: "degraded" }, false);
    await store.writer.flushChanges();
    expect(await stored()).toEqual({ refreshed: "healthy", changed: "unhealthy" });
  });

  it("backs off between retries of a read-only database and writes everything once it is writable", async () => {
    const location = await freshStoreLocation(dialect, "nbf-write-behind-");
    const store = await freshStore(dialect, {
      ...location,
      retry: { retryMinMs: 50, retryMaxMs: 10_000, closeTimeoutMs: 1000 },
    });
    await setReadOnly(store, location.databaseUrl, true);
    for (let i = 0; i < 10; i++) store.writer.appendEvent(event(`r${i}`));
    await store.writer.flush();
    expect(store.writer.health().lastError).toMatch(/readonly|read-only/i);
    // Retries at 50, 100, 200, 400 ms … : about 4 attempts in 800 ms, not one per flush call.
    const started = Date.now();
    while (Date.now() - started < 800) {
      await store.writer.flush();
      await sleep(10);
    }
    const failures = store.writer.health().failures;
    expect(failures).toBeGreaterThanOrEqual(3);
    expect(failures).toBeLessThanOrEqual(6);
    await setReadOnly(store, location.databaseUrl, false);
    await eventually(async () => store.writer.pending === 0, Boolean, 10_000);
    expect(await storedEvents(store)).toHaveLength(10);
  });

  it("close() retries a failing write until its deadline", async () => {
    const store = await freshStore(dialect);
    const setFailing = await installFailingTrigger(store);
    await setFailing(true);
    store.writer.appendEvent(event("late"));
    await store.writer.flush();
    expect(store.writer.health().status).toBe("degraded");
    setTimeout(() => void setFailing(false), 150);
    await store.writer.close();
    expect(store.writer.pending).toBe(0);
    expect(await storedEvents(store)).toEqual(["late"]);
  });

  it("bounds the events kept while writes fail and counts the dropped ones", async () => {
    const store = await freshStore(dialect, {
      retry: { retryMinMs: 10_000, maxPendingEvents: 10, closeTimeoutMs: 0 },
    });
    const setFailing = await installFailingTrigger(store);
    await setFailing(true);
    for (let i = 0; i < 25; i++) store.writer.appendEvent(event(`d${String(i).padStart(2, "0")}`));
    await store.writer.flush();
    expect(store.writer.health()).toMatchObject({ status: "degraded", pendingRows: 10, droppedRows: 15 });
  });

  it("/healthz reports failing writes as degraded with the pending rows and the error", async () => {
    controller = await startTestController({ settings: await freshStoreLocation(dialect) });
    const { app } = controller;
    const setFailing = await installFailingTrigger(app.nbfleet.store);
    await setFailing(true);
    for (let i = 0; i < 3; i++) app.nbfleet.store.writer.appendEvent(event(`h${i}`));
    await eventually(async () => app.nbfleet.store.writer.health().failures > 0, Boolean, 5000);
    const degraded = await call(app, "GET", "/healthz");
    expect(degraded.statusCode).toBe(200);
    expect(degraded.json()).toMatchObject({
      status: "degraded",
      store: {
        status: "degraded",
        pendingRows: 3,
        lastError: expect.stringContaining("injected write failure"),
      },
    });
    await setFailing(false);
    await eventually(async () => app.nbfleet.store.writer.health().status === "ok", Boolean, 10_000);
    expect((await call(app, "GET", "/healthz")).json()).toMatchObject({
      status: "ok",
      store: { status: "ok", pendingRows: 0, failures: 0 },
    });
    expect(await storedEvents(app.nbfleet.store)).toEqual(["h0", "h1", "h2"]);
  });
});
