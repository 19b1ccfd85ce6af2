/**
 * Three replicas in this process on one PostgreSQL database, simulated agents held by chosen
 * replicas: commands, results, operations, deletes, policies and event streams cross between
 * them through the signals.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { CloseCode } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { freshDatabaseUrl } from "@nbfleet/testkit/postgres-database";
import { SimAgent } from "@nbfleet/testkit/sim-agent";
import { type SeededVm, seedVms } from "@nbfleet/testkit/sim-fleet";
import { SseReader } from "@nbfleet/testkit/sse-reader";
import { eventually } from "@nbfleet/testkit/wait";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commandIdPrefix } from "../operations/actions.js";
import type { PgSignals } from "./signals.js";

let databaseUrl: string;
let admin: pg.Client;
let replicas: TestController[] = [];
let token: string;
let vms: SeededVm[];
const agents = new Map<string, SimAgent>();
const readers: SseReader[] = [];

const [A, B, C] = [0, 1, 2];
/** VM i's agent is held by replica i % 3. */
const holder = (i: number) => i % 3;

beforeAll(async () => {
  databaseUrl = await freshDatabaseUrl();
  admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  const first = await startTestController({ settings: { databaseUrl, reportIntervalSec: 1 } });
  token = first.adminToken;
  replicas = [first];
  for (let i = 1; i < 3; i++)
    replicas.push(
      await startTestController({ settings: { databaseUrl, adminToken: token, reportIntervalSec: 1 } }),
    );
  vms = await seedVms(first.app, { count: 9 });
  await Promise.all(
    vms.map(async (vm, i) => {
      const agent = new SimAgent({ url: replicas[holder(i)]!.url, token: vm.credential, hostname: vm.name });
      agents.set(vm.name, agent);
      await agent.connect();
    }),
  );
  // Every replica's status rows are written (the API reads agent presence from them).
  await Promise.all(replicas.map((r) => r.app.nbfleet.store.writer.flush()));
}, 60_000);

afterAll(async () => {
  for (const reader of readers) reader.close();
  for (const agent of agents.values()) agent.terminate();
  await Promise.all(replicas.map((replica) => replica.close()));
  await admin?.end();
}, 30_000);

const app = (i: number) => replicas[i]!.app;
const agentOf = (i: number) => agents.get(vms[i]!.name)!;
const executed = (agent: SimAgent, id: string) => agent.executed.filter((e) => e.command.id === id).length;

describe("replicas on one PostgreSQL, signalled", () => {
  it("a notebook restart through A for an agent held by C runs there at once, and A answers its result", async () => {
    const vm = vms[2]!.name;
    expect(replicas[C]!.app.nbfleet.gateway.isConnected(vm)).toBe(true);
    expect(replicas[A]!.app.nbfleet.gateway.isConnected(vm)).toBe(false);
    const started = Date.now();
    const res = await call(app(A), "POST", `/v1/vms/${vm}/notebook/restart`, { token });
    expect(res.statusCode).toBe(202);
    // Another replica holds the agent: the answer says connected, not "offline, queued".
    expect(res.json()).toMatchObject({ agentConnected: true, note: null });
    const id = res.json().id as string;
    const waited = await call(app(A), "GET", `/v1/commands/${id}?wait=10`, { token });
    expect(waited.json()).toMatchObject({ id, state: "succeeded", vmName: vm });
    // Routed by a signal, not by a sweep or a reconnect: well under a second.
    expect(Date.now() - started).toBeLessThan(1500);
    expect(executed(agentOf(2), id)).toBe(1);
  });

  it("refuses a command with ifOffline=fail only when no replica holds the agent", async () => {
    const vm = vms[1]!.name;
    const res = await call(app(A), "POST", `/v1/vms/${vm}/notebook/start`, {
      token,
      body: { ifOffline: "fail" },
    });
    expect(res.statusCode).toBe(202);
    await call(app(A), "GET", `/v1/commands/${res.json().id}?wait=10`, { token });
    expect(executed(agentOf(1), res.json().id)).toBe(1);
  });

  it("an operation created on A over agents held by B and C finishes with every target run once", async () => {
    const names = vms.filter((_, i) => holder(i) !== A).map((vm) => vm.name);
    const res = await call(app(A), "POST", "/v1/operations", {
      token,
      body: { action: "notebook.restart", selector: { names }, maxConcurrency: 2 },
    });
    expect(res.statusCode).toBe(201);
    const id = res.json().operation.id as string;
    const done = await eventually(
      async () => (await call(app(A), "GET", `/v1/operations/${id}?targetsLimit=100`, { token })).json(),
      (op) => op.state !== "running" && op.state !== "pending",
      20_000,
      50,
    );
    expect(done.state).toBe("succeeded");
    expect(done.counts).toMatchObject({ succeeded: names.length, failed: 0 });
    for (const name of names) {
      const runs = agents.get(name)!.executed.filter((e) => e.command.id.startsWith(commandIdPrefix(id)));
      expect(runs.length, name).toBe(1);
    }
  });

  it("a rolling operation's health gate opens for agents held by other replicas than the one running it", async () => {
    const names = vms.filter((_, i) => holder(i) !== A && i !== 4).map((vm) => vm.name);
    const res = await call(app(A), "POST", "/v1/operations", {
      token,
      body: {
        action: "notebook.restart",
        selector: { names },
        maxConcurrency: 2,
        rolling: { enabled: true, healthTimeoutSec: 8 },
      },
    });
    expect(res.statusCode).toBe(201);
    const id = res.json().operation.id as string;
    const done = await eventually(
      async () => (await call(app(A), "GET", `/v1/operations/${id}?targetsLimit=100`, { token })).json(),
      (op) => op.state !== "running" && op.state !== "pending",
      25_000,
      100,
    );
    expect(done.counts).toMatchObject({ succeeded: names.length, failed: 0 });
    expect(done.state).toBe("succeeded");
  });

  it("a cancel requested on one replica stops the operation on the replica running it", async () => {
    // The first target (by name) has an agent that holds its command (never answers): the operation stays running.
    const stuck = agentOf(1);
    const names = [vms[1]!.name, vms[2]!.name, vms[3]!.name, vms[5]!.name];
    stuck.options.ignore = (command) => command.name === "notebook.stop";
    try {
      const res = await call(app(A), "POST", "/v1/operations", {
        token,
        body: { action: "notebook.stop", selector: { names }, maxConcurrency: 1 },
      });
      expect(res.statusCode).toBe(201);
      const id = res.json().operation.id as string;
      const runner = await eventually(
        async () => replicas.findIndex((r) => r.app.nbfleet.operations.runner(id)?.running === 1),
        (i) => i >= 0,
        5000,
      );
      const elsewhere = (runner + 1) % 3;
      const cancelled = await call(app(elsewhere), "POST", `/v1/operations/${id}/cancel`, { token });
      expect(cancelled.statusCode).toBe(200);
      // The runner stops starting targets at once: the three waiting ones are cancelled.
      const op = await eventually(
        async () => (await call(app(elsewhere), "GET", `/v1/operations/${id}`, { token })).json(),
        (o) => o.counts.cancelled === 3,
        3000,
        20,
      );
      expect(op.counts.running).toBe(1);
      for (const name of names.slice(1))
        expect(agents.get(name)!.executed.some((e) => e.command.name === "notebook.stop")).toBe(false);
    } finally {
      stuck.options.ignore = undefined;
    }
  });

  it("a VM deleted through A closes its agent's socket on B", async () => {
    const agent = agentOf(4);
    expect(replicas[B]!.app.nbfleet.gateway.isConnected(vms[4]!.name)).toBe(true);
    const res = await call(app(A), "DELETE", `/v1/vms/${vms[4]!.name}`, { token });
    expect(res.statusCode).toBeLessThan(300);
    await agent.waitFor(() => agent.closes.length > 0, 3000, "the close");
    expect(agent.closes[0]!.code).toBe(CloseCode.unauthorized);
    expect(replicas[B]!.app.nbfleet.gateway.isConnected(vms[4]!.name)).toBe(false);
  });

  it("an idle policy set through A is applied on B and C", async () => {
    const policy = { enabled: true, rules: [{ labels: "team=x", idleMinutes: 30, action: "notebook.stop" }] };
    const res = await call(app(A), "PUT", "/v1/policies/idle", { token, body: policy });
    expect(res.statusCode).toBe(200);
    for (const i of [B, C])
      await eventually(
        () => replicas[i]!.app.nbfleet.idlePolicy.get(),
        (p) => p.enabled && p.rules.length === 1,
        3000,
      );
  });

  it("SSE on A shows an event caused on C; readers on A and B see the same events in the same order", async () => {
    const onA = new SseReader(`${replicas[A]!.url}/v1/events`, { token });
    const onB = new SseReader(`${replicas[B]!.url}/v1/events`, { token });
    readers.push(onA, onB);
    await Promise.all([onA.ready, onB.ready]);
    // Events from agents on all three replicas at once.
    for (let round = 0; round < 5; round++) {
      for (const i of [0, 1, 2, 3, 5, 6, 7, 8]) {
        agentOf(i).sendMessage({
          type: "event",
          event: {
            kind: "test.tick",
            level: "info",
            message: `round ${round} from ${vms[i]!.name}`,
            at: new Date().toISOString(),
          },
        });
      }
      await sleep(20);
    }
    const last = `round 4 from ${vms[8]!.name}`;
    const seen = (reader: SseReader) => reader.events.some((e) => JSON.parse(e.data).message === last);
    await eventually(async () => seen(onA) && seen(onB), Boolean, 10_000);
    await sleep(1500);
    const ids = (reader: SseReader) => reader.events.map((e) => e.id);
    // Both started before the first tick; from the first tick on they are the same list.
    const firstTick = (reader: SseReader) =>
      reader.events.findIndex((e) => JSON.parse(e.data).kind === "test.tick");
    const a = ids(onA).slice(firstTick(onA));
    const b = ids(onB).slice(firstTick(onB));
    expect(a.length).toBeGreaterThanOrEqual(40);
    expect(a).toEqual(b);
    expect([...a].sort()).toEqual(a);
    const fromC = onA.events.filter((e) => JSON.parse(e.data).vmName === vms[2]!.name);
    expect(fromC.length).toBeGreaterThanOrEqual(5);
  });

  it("Last-Event-ID from a stream on A resumes on B without a loss or a duplicate", async () => {
    const produce = async (rounds: number, tag: string) => {
      for (let round = 0; round < rounds; round++) {
        for (const i of [0, 2, 3, 6, 7]) {
          agentOf(i).sendMessage({
            type: "event",
            event: {
              kind: "test.resume",
              level: "info",
              message: `${tag} ${round} ${i}`,
              at: new Date().toISOString(),
            },
          });
        }
        await sleep(15);
      }
    };
    const first = new SseReader(`${replicas[A]!.url}/v1/events?kind=test.resume`, { token });
    readers.push(first);
    await first.ready;
    const producing = produce(30, "p");
    await eventually(
      async () => first.events.length,
      (n) => n >= 20,
      10_000,
    );
    first.close();
    const resumed = new SseReader(`${replicas[B]!.url}/v1/events?kind=test.resume`, {
      token,
      lastEventId: first.lastId!,
    });
    readers.push(resumed);
    await producing;
    await eventually(
      async () => resumed.events.length + first.events.length,
      (n) => n >= 150,
      10_000,
    );
    await sleep(1500);
    const stored = await admin.query<{ id: string }>(
      "select id from events where kind = 'test.resume' order by id",
    );
    const all = stored.rows.map((r) => r.id);
    const got = [...first.events, ...resumed.events].map((e) => e.id);
    expect(new Set(got).size).toBe(got.length);
    expect(got).toEqual(all.slice(all.indexOf(got[0]!)));
    expect(got.length).toBe(150);
  });

  it("events whose writes failed for longer than the settle window still reach streams on other replicas", async () => {
    const reader = new SseReader(`${replicas[A]!.url}/v1/events?kind=test.late`, { token });
    readers.push(reader);
    await reader.ready;
    await admin.query("alter table events rename to events_away");
    try {
      for (const i of [2, 5, 8])
        agentOf(i).sendMessage({
          type: "event",
          event: { kind: "test.late", level: "info", message: `late ${i}`, at: new Date().toISOString() },
        });
      // Every replica's writes fail for several settle windows.
      await sleep(2500);
    } finally {
      await admin.query("alter table events_away rename to events");
    }
    await eventually(
      async () => reader.events.length,
      (n) => n >= 3,
      10_000,
    );
    await sleep(1000);
    expect(reader.events.map((e) => JSON.parse(e.data).message).sort()).toEqual([
      "late 2",
      "late 5",
      "late 8",
    ]);
  });

  it("a killed listener connection reconnects and resyncs: a command queued meanwhile still runs and its result reaches A", async () => {
    const resyncs: number[] = [];
    for (const r of replicas) r.app.nbfleet.signals.onResync(() => void resyncs.push(1));
    const killed = await admin.query(
      "select pg_terminate_backend(pid) from pg_stat_activity where application_name like 'nbfleet-signals %'",
    );
    expect(killed.rowCount).toBeGreaterThanOrEqual(3);
    // Queued at once, while the listeners are (most likely) still down: the NOTIFY is lost.
    const vm = vms[5]!.name;
    const res = await call(app(A), "POST", `/v1/vms/${vm}/notebook/restart`, { token });
    expect(res.statusCode).toBe(202);
    const id = res.json().id as string;
    const waited = await call(app(A), "GET", `/v1/commands/${id}?wait=10`, { token });
    expect(waited.json()).toMatchObject({ id, state: "succeeded" });
    expect(executed(agentOf(5), id)).toBe(1);
    await eventually(
      async () => resyncs.length,
      (n) => n >= 3,
      5000,
    );
    for (const r of replicas)
      expect((r.app.nbfleet.signals as PgSignals).connections).toBeGreaterThanOrEqual(2);
  });
});
