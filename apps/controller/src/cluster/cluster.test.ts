/**
 * Several replicas in one process on one PostgreSQL database: registration and heartbeats
 * (`GET /v1/replicas`), each cluster-wide job on exactly one replica and handed over when its
 * holder closes or stalls, agent ownership in `vm_status.replica_id`, the janitor, and a bulk
 * operation whose runner's lease is lost mid-way finishing on another replica with every target
 * run exactly once.
 */
import type { ReplicaList } from "@nbfleet/shared";
import { runCli } from "@nbfleet/testkit/cli";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { freshDatabaseUrl } from "@nbfleet/testkit/postgres-database";
import type { SimAgent } from "@nbfleet/testkit/sim-agent";
import { SimFleet, seedVms } from "@nbfleet/testkit/sim-fleet";
import { afterEach, describe, expect, it } from "vitest";
import type { CreatedOperation } from "../api/operations/schemas.js";
import { commandIdPrefix } from "../operations/actions.js";
import { leaseHolder } from "./leases.js";

/** Heartbeat 0.3 s: leases last 0.9 s and are renewed every 0.3 s. */
const HEARTBEAT_SEC = 0.3;
const JOBS = ["command-sweeps", "operations", "reconcile", "retention", "janitor"];

const started: TestController[] = [];
const fleets: SimFleet[] = [];
afterEach(async () => {
  for (const fleet of fleets.splice(0)) fleet.close();
  await Promise.all(started.splice(0).map((c) => c.close().catch(() => {})));
});

async function replicas(count: number, heartbeatSec = HEARTBEAT_SEC): Promise<TestController[]> {
  const databaseUrl = await freshDatabaseUrl();
  const out: TestController[] = [];
  for (let i = 0; i < count; i++) {
    const controller = await startTestController({
      settings: {
        databaseUrl,
        replicaHeartbeatSec: heartbeatSec,
        reportIntervalSec: 1,
        ...(out[0] ? { adminToken: out[0].adminToken } : {}),
      },
    });
    started.push(controller);
    out.push(controller);
  }
  return out;
}

const idOf = (c: TestController) => c.app.nbfleet.cluster.replica.id;

async function listReplicas(c: TestController, query = ""): Promise<ReplicaList["items"]> {
  const response = await call(c.app, "GET", `/v1/replicas${query}`, { token: c.adminToken });
  expect(response.statusCode).toBe(200);
  return (response.json() as ReplicaList).items;
}

async function statusRow(c: TestController, vmName: string) {
  return c.app.nbfleet.store.db
    .selectFrom("vm_status")
    .select(["agent_status", "replica_id", "health"])
    .where("vm_name", "=", vmName)
    .executeTakeFirstOrThrow();
}

/** Which of the controllers run `job` now. */
const holders = (cs: TestController[], job: string) =>
  cs.filter((c) => c.app.nbfleet.cluster.leases.held(job));

describe("replicas on one PostgreSQL", () => {
  it("register with their URL and agent count, list each other, and leave on a clean close", async () => {
    const [a, b] = await replicas(2);
    const vms = await seedVms(a!.app, { count: 1 });
    const fleet = new SimFleet(a!.url, vms);
    fleets.push(fleet);
    await fleet.connectAll();
    await expect
      .poll(async () => (await listReplicas(b!)).map((r) => [r.id, r.url, r.agents, r.alive, r.self]), {
        timeout: 5000,
      })
      .toEqual([
        [idOf(a!), a!.url, 1, true, false],
        [idOf(b!), b!.url, 0, true, true],
      ]);
    const [first] = await listReplicas(a!);
    expect(first).toMatchObject({ self: true, version: expect.any(String) });
    expect(Date.parse(first!.lastHeartbeatAt)).toBeGreaterThan(Date.now() - 3 * HEARTBEAT_SEC * 1000);

    // A replica that stopped heartbeating long ago is dead: listed only with all=true.
    await a!.app.nbfleet.store.db
      .insertInto("replicas")
      .values({
        id: "rep_gone",
        url: "http://127.0.0.1:9",
        version: "0.0.1",
        started_at: "2026-01-01T00:00:00.000Z",
        heartbeat_at: new Date(Date.now() - 60_000).toISOString(),
        agents: 3,
      })
      .execute();
    expect((await listReplicas(a!)).map((r) => r.id)).not.toContain("rep_gone");
    expect((await listReplicas(a!, "?all=true")).find((r) => r.id === "rep_gone")).toMatchObject({
      alive: false,
      agents: 3,
    });
    const refused = await call(a!.app, "GET", "/v1/replicas?all=maybe", { token: a!.adminToken });
    expect(refused.statusCode).toBe(400);

    await b!.close();
    expect((await listReplicas(a!)).map((r) => r.id)).toEqual([idOf(a!)]);
  });

  it("run each cluster-wide job on exactly one replica, handed over when the holder closes or stalls", async () => {
    const cs = await replicas(3);
    for (const job of JOBS) {
      const running = holders(cs, job);
      expect(running, job).toHaveLength(1);
      expect((await leaseHolder(cs[0]!.app.nbfleet.store.db, job))?.holder).toBe(idOf(running[0]!));
    }
    // Never two at once while the jobs move around.
    let overlap: string | null = null;
    const sampler = setInterval(() => {
      for (const job of JOBS) if (holders(cs, job).length > 1) overlap = job;
    }, 10);
    try {
      const first = holders(cs, "operations")[0]!;
      const closedAt = Date.now();
      await first.close();
      const rest = cs.filter((c) => c !== first);
      // Released on close: taken at the others' next renewal.
      for (const job of JOBS)
        await expect.poll(() => holders(rest, job).length, { timeout: 3000, interval: 20 }).toBe(1);
      expect(Date.now() - closedAt).toBeLessThan(3 * HEARTBEAT_SEC * 1000 + 1500);

      const second = holders(rest, "operations")[0]!;
      const last = rest.find((c) => c !== second)!;
      const stalledAt = Date.now();
      second.app.nbfleet.cluster.leases.stopRenewing();
      for (const job of JOBS) {
        await expect.poll(() => holders([last], job).length, { timeout: 5000, interval: 20 }).toBe(1);
        expect(holders([second], job)).toHaveLength(0);
      }
      // Within the ttl (plus a renewal and scheduling slack) of the stall.
      expect(Date.now() - stalledAt).toBeLessThan(3 * HEARTBEAT_SEC * 1000 + 2000);
    } finally {
      clearInterval(sampler);
    }
    expect(overlap).toBeNull();
  });

  it("record which replica holds each agent; a stale write from the old one never wins; the janitor releases dead replicas' agents", async () => {
    const [a, b] = await replicas(2);
    const vms = await seedVms(a!.app, { count: 3 });
    // sim-2 has no agent: below it is recorded as held by a dead replica.
    const fleet = new SimFleet(a!.url, vms.slice(0, 2), { reconnect: { minMs: 20, maxMs: 100 } });
    fleets.push(fleet);
    await fleet.connectAll();
    await expect
      .poll(() => statusRow(a!, "sim-0"), { timeout: 5000 })
      .toMatchObject({ agent_status: "connected", replica_id: idOf(a!) });

    // The agent moves to b; a's own disconnect row (written behind) must not undo b's.
    const mover = fleet.byName("sim-0")!;
    mover.options.url = b!.url;
    mover.ws!.close(1001);
    await expect.poll(() => b!.app.nbfleet.gateway.isConnected("sim-0"), { timeout: 5000 }).toBe(true);
    await a!.app.nbfleet.store.writer.flush();
    await b!.app.nbfleet.store.writer.flush();
    await a!.app.nbfleet.store.writer.flush();
    expect(await statusRow(a!, "sim-0")).toMatchObject({ agent_status: "connected", replica_id: idOf(b!) });
    // A report a still had queued from the old connection is stale too.
    a!.app.nbfleet.store.writer.putStatus({
      vm_name: "sim-0",
      agent_status: "connected",
      last_seen_at: new Date().toISOString(),
      connected_at: new Date(Date.now() - 60_000).toISOString(),
      agent_info: null,
      notebook: null,
      health: "unhealthy",
      health_report: null,
      updated_at: new Date().toISOString(),
      replica_id: idOf(a!),
    });
    await a!.app.nbfleet.store.writer.flush();
    expect(await statusRow(a!, "sim-0")).toMatchObject({ replica_id: idOf(b!), health: "healthy" });

    // A replica starting now leaves the live replicas' agents alone.
    const [c] = await replicasOn(a!);
    expect(await statusRow(c!, "sim-0")).toMatchObject({ agent_status: "connected", replica_id: idOf(b!) });
    expect(await statusRow(c!, "sim-1")).toMatchObject({ agent_status: "connected", replica_id: idOf(a!) });

    // An agent recorded on a replica that stopped heartbeating is released by the janitor.
    const { db } = a!.app.nbfleet.store;
    await db
      .insertInto("replicas")
      .values({
        id: "rep_dead",
        url: "http://127.0.0.1:9",
        version: "0.0.1",
        started_at: new Date(Date.now() - 120_000).toISOString(),
        heartbeat_at: new Date(Date.now() - 10_000).toISOString(),
        agents: 1,
      })
      .execute();
    await db
      .updateTable("vm_status")
      .set({ agent_status: "connected", health: "healthy", replica_id: "rep_dead" })
      .where("vm_name", "=", "sim-2")
      .execute();
    await expect
      .poll(() => statusRow(a!, "sim-2"), { timeout: 5000 })
      .toEqual({ agent_status: "disconnected", replica_id: null, health: "unknown" });
    expect(await statusRow(a!, "sim-0")).toMatchObject({ agent_status: "connected", replica_id: idOf(b!) });
    expect(await statusRow(a!, "sim-1")).toMatchObject({ agent_status: "connected", replica_id: idOf(a!) });
    const released = () =>
      db.selectFrom("events").select("data").where("kind", "=", "replica.agents_released").execute();
    await expect.poll(async () => (await released()).length, { timeout: 5000 }).toBeGreaterThan(0);
  });

  it("runs an operation created on a replica that does not hold the operations lease", async () => {
    const [a, b] = await replicas(2);
    expect(a!.app.nbfleet.cluster.leases.held("operations")).toBe(true);
    const vms = await seedVms(a!.app, { count: 3 });
    const fleet = new SimFleet(a!.url, vms, { record: true });
    fleets.push(fleet);
    await fleet.connectAll();
    const created = await call(b!.app, "POST", "/v1/operations", {
      token: b!.adminToken,
      body: { action: "notebook.restart", selector: { all: true }, maxConcurrency: 3 },
    });
    expect(created.statusCode).toBe(201);
    const id = (created.json() as CreatedOperation).operation.id;
    await expect.poll(() => operationState(b!, id), { timeout: 10_000 }).toBe("succeeded");
    for (const agent of fleet.agents) expect(restartsFor(agent, id)).toBe(1);
  });

  it("a replica that does not run an operation reports the counts its runner stores (no count of the targets), exact once it ends", async () => {
    const [a, b] = await replicas(2);
    const vms = await seedVms(a!.app, { count: 4 });
    const fleet = new SimFleet(a!.url, vms, { record: true, commandDelayMs: 1500 });
    fleets.push(fleet);
    await fleet.connectAll();
    const created = await call(a!.app, "POST", "/v1/operations", {
      token: a!.adminToken,
      body: { action: "notebook.restart", selector: { all: true }, maxConcurrency: 1 },
    });
    const id = (created.json() as CreatedOperation).operation.id;
    // The runner has stored its first progress (one target running); it writes again only when a
    // count changes, 1.5 s later, so the marker below stays put meanwhile.
    await expect
      .poll(async () => (await b!.app.nbfleet.store.operations.get(id))?.summary, { timeout: 5000 })
      .toMatchObject({ running: 1 });
    // A summary no runner would write: b can only show it by reading it, not by counting rows.
    const marker = { pending: 11, running: 22, succeeded: 33, failed: 0, skipped: 0, cancelled: 0 };
    await b!.app.nbfleet.store.operations.update(id, { summary: marker });
    const seenOn = async (c: TestController) =>
      (
        (await call(c.app, "GET", `/v1/operations/${id}?targetsLimit=0`, { token: c.adminToken })).json() as {
          counts: Record<string, number>;
        }
      ).counts;
    expect(await seenOn(b!)).toMatchObject(marker);
    // a runs it: its own tally (four targets), whatever the row says.
    const onA = await seenOn(a!);
    expect(Object.values(onA).reduce((n, k) => n + k, 0)).toBe(4);
    await expect.poll(() => operationState(b!, id), { timeout: 20_000 }).toBe("succeeded");
    expect(await seenOn(b!)).toMatchObject({ succeeded: 4, pending: 0, running: 0 });
  });

  it("hands a bulk operation over when its runner's lease is lost mid-way; every target runs exactly once", async () => {
    const [a, b] = await replicas(2);
    expect(a!.app.nbfleet.cluster.leases.held("operations")).toBe(true);
    const vms = await seedVms(a!.app, { count: 6 });
    const fleet = new SimFleet(a!.url, vms, { record: true, commandDelayMs: 300 });
    fleets.push(fleet);
    await fleet.connectAll();
    const created = await call(a!.app, "POST", "/v1/operations", {
      token: a!.adminToken,
      body: { action: "notebook.restart", selector: { all: true }, maxConcurrency: 2 },
    });
    expect(created.statusCode).toBe(201);
    const id = (created.json() as CreatedOperation).operation.id;
    await expect
      .poll(async () => (await a!.app.nbfleet.operations.counts(id)).succeeded, {
        timeout: 10_000,
        interval: 20,
      })
      .toBeGreaterThanOrEqual(2);

    // The agents drop off (commands under way finish and keep their results), and a stalls:
    // its lease runs out, its runner stops, b takes the operations over.
    for (const agent of fleet.agents) agent.close();
    a!.app.nbfleet.cluster.leases.stopRenewing();
    await expect.poll(() => b!.app.nbfleet.cluster.leases.held("operations"), { timeout: 5000 }).toBe(true);
    expect(a!.app.nbfleet.cluster.leases.held("operations")).toBe(false);
    expect(a!.app.nbfleet.operations.runner(id)).toBeUndefined();
    await expect.poll(() => b!.app.nbfleet.operations.runner(id) !== undefined, { timeout: 5000 }).toBe(true);
    expect((await operationState(b!, id)) !== "succeeded").toBe(true);

    // They come back to b, which finishes the operation.
    for (const agent of fleet.agents) {
      agent.options.url = b!.url;
      await agent.connect();
    }
    await expect.poll(() => operationState(b!, id), { timeout: 15_000 }).toBe("succeeded");
    for (const agent of fleet.agents) expect(restartsFor(agent, id), agent.hostname).toBe(1);
    const events = await b!.app.nbfleet.store.db
      .selectFrom("events")
      .select("message")
      .where("kind", "=", "operation.resumed")
      .execute();
    expect(events.map((e) => e.message)).toEqual([expect.stringContaining(`resumed on replica ${idOf(b!)}`)]);
  });

  it("a replica that takes an operation over sends the commands its runner committed but never signalled", async () => {
    // Leases of 6 s: a busy test machine cannot move the operations to b before the test does.
    const [a, b] = await replicas(2, 2);
    expect(a!.app.nbfleet.cluster.leases.held("operations")).toBe(true);
    const { fleet } = await agentsSettledOn(b!, a!, 4);
    // a commits its starts and then is gone before any command.queued leaves it, as when it
    // is killed right after the commit.
    dropQueuedSignals(a!, Number.POSITIVE_INFINITY);
    const created = await call(a!.app, "POST", "/v1/operations", {
      token: a!.adminToken,
      body: { action: "notebook.restart", selector: { all: true }, maxConcurrency: 4 },
    });
    expect(created.statusCode).toBe(201);
    const id = (created.json() as CreatedOperation).operation.id;
    const queued = () =>
      b!.app.nbfleet.store.db
        .selectFrom("commands")
        .select("id")
        .where("operation_id", "=", id)
        .where("state", "=", "queued")
        .execute();
    await expect.poll(async () => (await queued()).length, { timeout: 10_000 }).toBe(4);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await queued()).toHaveLength(4);

    // b takes the operations over (a 6 s lease) and finishes this one at once.
    a!.app.nbfleet.cluster.leases.stopRenewing();
    await expect.poll(() => operationState(b!, id), { timeout: 20_000 }).toBe("succeeded");
    expect(b!.app.nbfleet.cluster.leases.held("operations")).toBe(true);
    for (const agent of fleet.agents) expect(restartsFor(agent, id), agent.hostname).toBe(1);
  });

  it("a command whose signal was lost is routed again by the sweep and reaches its agent on another replica", async () => {
    const [a, b] = await replicas(2, 2);
    const { vms, fleet } = await agentsSettledOn(b!, a!, 1);
    const vm = vms[0];
    // a commits the command and is gone before its command.queued leaves (killed in between).
    const dropped = dropQueuedSignals(a!, 1);
    const accepted = await call(a!.app, "POST", `/v1/vms/${vm!.name}/notebook/restart`, {
      token: a!.adminToken,
    });
    expect(accepted.statusCode).toBe(202);
    const id = (accepted.json() as { id: string }).id;
    const state = async () => (await b!.app.nbfleet.commands.get(id))?.state;
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(await state()).toBe("queued");
    expect(dropped.count).toBe(1);
    await expect.poll(state, { timeout: 20_000, interval: 200 }).toBe("succeeded");
    expect(fleet.agents[0]!.executed.map((e) => e.command.id)).toEqual([id]);
    const rerouted = await call(holders([a!, b!], "command-sweeps")[0]!.app, "GET", "/metrics", {
      token: a!.adminToken,
    });
    expect(rerouted.body).toMatch(/^nbfleet_commands_rerouted_total 1$/m);
  });

  it("nbfleet replicas prints the replicas as a table, or JSON", async () => {
    const [a, b] = await replicas(2);
    await expect
      .poll(async () => (await listReplicas(a!)).every((r) => r.url.startsWith("http://127.")), {
        timeout: 5000,
      })
      .toBe(true);
    const table = await runCli(a!, "replicas");
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/ID\s+│\s+URL\s+│\s+VERSION\s+│\s+AGENTS\s+│\s+HEARTBEAT/);
    expect(table.stdout).toContain(`${idOf(a!)} *`);
    expect(table.stdout).toContain(b!.url);
    const json = await runCli(a!, "--json", "replicas");
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout).map((r: { id: string; self: boolean }) => [r.id, r.self])).toEqual([
      [idOf(a!), true],
      [idOf(b!), false],
    ]);
  }, 60_000);
});

describe("a single replica on SQLite", () => {
  it("lists itself and runs every job, with no replica or lease rows", async () => {
    const c = await startTestController();
    started.push(c);
    const items = await listReplicas(c);
    expect(items).toEqual([
      expect.objectContaining({ id: idOf(c), url: c.url, agents: 0, alive: true, self: true }),
    ]);
    for (const job of JOBS.filter((j) => j !== "janitor")) expect(holders([c], job)).toHaveLength(1);
    const { db } = c.app.nbfleet.store;
    expect(await db.selectFrom("replicas").selectAll().execute()).toEqual([]);
    expect(await db.selectFrom("leases").selectAll().execute()).toEqual([]);
  });
});

/**
 * `count` agents seeded through `seeder` and connected to `holder`, which has read their queues
 * (beside their first frames after the welcome, a report a second, late on a busy machine):
 * past that, only a signal, a resume or the sweep sends these agents a command.
 */
async function agentsSettledOn(holder: TestController, seeder: TestController, count: number) {
  const vms = await seedVms(seeder.app, { count });
  const fleet = new SimFleet(holder.url, vms, { record: true });
  fleets.push(fleet);
  await fleet.connectAll();
  await new Promise((resolve) => setTimeout(resolve, 3000));
  await holder.app.nbfleet.store.writer.flush();
  return { vms, fleet };
}

/** `c` drops its next `howMany` command.queued signals, as if killed before they left. */
function dropQueuedSignals(c: TestController, howMany: number): { count: number } {
  const signals = c.app.nbfleet.signals;
  const send = signals.send.bind(signals);
  const dropped = { count: 0 };
  signals.send = (kind, ids) => {
    if (kind === "command.queued" && dropped.count < howMany) dropped.count++;
    else send(kind, ids);
  };
  return dropped;
}

/** One more replica on the same database as `existing`. */
async function replicasOn(existing: TestController): Promise<TestController[]> {
  const controller = await startTestController({
    settings: {
      databaseUrl: existing.app.nbfleet.settings.databaseUrl!,
      replicaHeartbeatSec: HEARTBEAT_SEC,
      adminToken: existing.adminToken,
    },
  });
  started.push(controller);
  return [controller];
}

async function operationState(c: TestController, id: string): Promise<string> {
  const response = await call(c.app, "GET", `/v1/operations/${id}?targetsLimit=0`, { token: c.adminToken });
  return (response.json() as { state: string }).state;
}

/** How many times the agent ran this operation's command. */
function restartsFor(agent: SimAgent, operationId: string): number {
  const prefix = commandIdPrefix(operationId);
  return agent.executed.filter((e) => e.command.id.startsWith(prefix)).length;
}
