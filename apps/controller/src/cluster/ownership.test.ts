/**
 * `vm_status.replica_id` through the write-behind upsert on both dialects: a row is kept only
 * while connected, and a row from a replica the agent has since left never overwrites the
 * newer connection's. markDisconnectedUnlessHeldLive and the janitor's passes leave live
 * replicas' agents alone.
 */
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { afterEach, describe, expect, it } from "vitest";
import { EventBus } from "../events/bus.js";
import { type Store, openStore } from "../store/store.js";
import { type StatusRow, neverConnectedStatus } from "../store/vms-repo.js";
import { localClock } from "./cluster-clock.js";
import { sweepDeadReplicas } from "./janitor.js";

const stores: Store[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

async function storeWithVm(dialect: (typeof STORE_DIALECTS)[number], names = ["vm"]): Promise<Store> {
  const store = await openStore({ ...(await freshStoreLocation(dialect)), flushMs: 10, flushMaxItems: 100 });
  stores.push(store);
  for (const name of names)
    await store.vms.insert({ name, provider: "test", state: "running", labels: {}, passwordHash: null });
  return store;
}

function row(
  vmName: string,
  replica: string | null,
  status: "connected" | "disconnected",
  connectedAt: string,
  health = "healthy",
): StatusRow {
  return {
    ...neverConnectedStatus(vmName, new Date().toISOString()),
    agent_status: status,
    connected_at: connectedAt,
    health: status === "connected" ? health : "unknown",
    replica_id: replica,
  };
}

async function read(store: Store, vmName = "vm") {
  return store.db
    .selectFrom("vm_status")
    .select(["agent_status", "replica_id", "health", "connected_at"])
    .where("vm_name", "=", vmName)
    .executeTakeFirstOrThrow();
}

const T1 = "2026-12-04T10:00:01.000Z";
const T2 = "2026-12-04T10:00:02.000Z";

describe.each(STORE_DIALECTS)("agent ownership on %s", (dialect) => {
  it("records the holding replica while connected and clears it on its own disconnect", async () => {
    const store = await storeWithVm(dialect);
    await store.vms.upsertStatuses([row("vm", "rep_a", "connected", T1)]);
    expect(await read(store)).toEqual({
      agent_status: "connected",
      replica_id: "rep_a",
      health: "healthy",
      connected_at: T1,
    });
    await store.vms.upsertStatuses([row("vm", "rep_a", "disconnected", T1)]);
    expect(await read(store)).toEqual({
      agent_status: "disconnected",
      replica_id: null,
      health: "unknown",
      connected_at: T1,
    });
  });

  it("ignores the old replica's disconnect and stale reports once the agent is on another replica", async () => {
    const store = await storeWithVm(dialect);
    await store.vms.upsertStatuses([row("vm", "rep_a", "connected", T1)]);
    await store.vms.upsertStatuses([row("vm", "rep_b", "connected", T2)]);
    expect(await read(store)).toMatchObject({ agent_status: "connected", replica_id: "rep_b" });
    // Written behind on rep_a after rep_b's: its disconnect and a report still queued there.
    await store.vms.upsertStatuses([row("vm", "rep_a", "disconnected", T1)]);
    await store.vms.upsertStatuses([row("vm", "rep_a", "connected", T1, "unhealthy")]);
    expect(await read(store)).toEqual({
      agent_status: "connected",
      replica_id: "rep_b",
      health: "healthy",
      connected_at: T2,
    });
    // rep_b's own reports still apply.
    await store.vms.upsertStatuses([row("vm", "rep_b", "connected", T2, "degraded")]);
    expect(await read(store)).toMatchObject({ replica_id: "rep_b", health: "degraded" });
  });

  it("lets a newer connection take the agent from a replica that never wrote its disconnect", async () => {
    const store = await storeWithVm(dialect);
    await store.vms.upsertStatuses([row("vm", "rep_a", "connected", T2)]);
    // An older connection elsewhere cannot take it...
    await store.vms.upsertStatuses([row("vm", "rep_b", "connected", T1)]);
    expect(await read(store)).toMatchObject({ replica_id: "rep_a" });
    // ...a newer one can.
    const T3 = "2026-12-04T10:00:03.000Z";
    await store.vms.upsertStatuses([row("vm", "rep_b", "connected", T3)]);
    expect(await read(store)).toMatchObject({ replica_id: "rep_b", connected_at: T3 });
  });

  it("rows without a replica (SQLite's single controller) always apply, as before", async () => {
    const store = await storeWithVm(dialect);
    await store.vms.upsertStatuses([row("vm", null, "connected", T2)]);
    await store.vms.upsertStatuses([row("vm", null, "disconnected", T1)]);
    expect(await read(store)).toEqual({
      agent_status: "disconnected",
      replica_id: null,
      health: "unknown",
      connected_at: T1,
    });
  });

  /** Four agents: held by a live replica, by a dead one, by none, and by one never registered. */
  async function fourHolders(): Promise<{ store: Store; now: number }> {
    const store = await storeWithVm(dialect, ["live", "dead", "nobody", "idle"]);
    const now = Date.now();
    const replica = (id: string, heartbeatAt: number) => ({
      id,
      url: `http://${id}`,
      version: "1",
      started_at: T1,
      heartbeat_at: new Date(heartbeatAt).toISOString(),
      agents: 1,
    });
    await store.db
      .insertInto("replicas")
      .values([replica("rep_live", now), replica("rep_dead", now - 60_000)])
      .execute();
    await store.vms.upsertStatuses([
      row("live", "rep_live", "connected", T1),
      row("dead", "rep_dead", "connected", T1),
      row("nobody", null, "connected", T1),
      row("idle", "rep_gone", "connected", T1),
    ]);
    return { store, now };
  }

  const released = { agent_status: "disconnected", replica_id: null, health: "unknown" };

  it("marks disconnected only the agents no live replica holds", async () => {
    const { store, now } = await fourHolders();
    expect(await store.vms.markDisconnectedUnlessHeldLive(new Date(now - 15_000).toISOString())).toBe(3);
    expect(await read(store, "live")).toMatchObject({ agent_status: "connected", replica_id: "rep_live" });
    for (const name of ["dead", "nobody", "idle"]) expect(await read(store, name)).toMatchObject(released);
  });

  it("the janitor's routine pass releases a dead replica's agents and unheld ones; its full pass also an unregistered holder's", async () => {
    const { store, now } = await fourHolders();
    const options = { store, bus: new EventBus(store.writer, localClock), heartbeatMs: 5_000 };
    expect(await sweepDeadReplicas(options, now, false)).toEqual({ agents: 2, removed: 0 });
    for (const name of ["dead", "nobody"]) expect(await read(store, name)).toMatchObject(released);
    expect(await read(store, "live")).toMatchObject({ agent_status: "connected", replica_id: "rep_live" });
    expect(await read(store, "idle")).toMatchObject({ agent_status: "connected", replica_id: "rep_gone" });
    expect(await sweepDeadReplicas(options, now, true)).toEqual({ agents: 1, removed: 0 });
    expect(await read(store, "idle")).toMatchObject(released);
    expect(await read(store, "live")).toMatchObject({ agent_status: "connected", replica_id: "rep_live" });
  });
});
