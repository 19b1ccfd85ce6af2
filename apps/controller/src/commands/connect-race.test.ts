/**
 * A command stored while its agent is connecting (PostgreSQL, where the agent's welcome reads
 * its queue on another connection than the transaction storing the command). The store said
 * `queued` (no agent when it looked); the welcome's read of the queue ran before the commit and
 * could not see the row. Nobody else sends it (the `command.queued` signal is for other
 * replicas), so the command waited for the agent's next connection or its TTL: a bulk
 * operation's target started just then stayed `running` (the lease-takeover test's flake).
 * SQLite has one connection: the welcome's read waits for the commit, so there is no race.
 *
 * The same with replicas: a command stored `sent` (its agent was here when the transaction
 * looked) whose agent moved to another replica before the commit, that replica's read of its
 * queue missing it. The frame cannot go out here; the command goes back to `queued` and the
 * replica holding the agent now claims and sends it.
 *
 * And the other way round: a command sent on the new connection by its enqueue while the
 * welcome's read of the queue is still under way is found by that read too, and goes out once.
 */
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { freshDatabaseUrl } from "@nbfleet/testkit/postgres-database";
import { SimAgent } from "@nbfleet/testkit/sim-agent";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
import { afterEach, describe, expect, it, vi } from "vitest";

let controller: TestController | undefined;
let agent: SimAgent | undefined;
const others: TestController[] = [];
afterEach(async () => {
  agent?.close();
  await controller?.close();
  await Promise.all(others.splice(0).map((c) => c.close()));
  controller = undefined;
  agent = undefined;
});

type Stored = { ok: true; value: { command: { id: string; state: string } } };

describe("a command queued while its agent connects (PostgreSQL)", () => {
  it("reaches the agent when the agent's welcome read its queue before the command was committed", async () => {
    controller = await startTestController({ settings: { databaseUrl: await freshDatabaseUrl() } });
    const { commands, store } = controller.app.nbfleet;
    const [vm] = await seedVms(controller.app, { count: 1 });
    agent = new SimAgent({ url: controller.url, token: vm!.credential, hostname: vm!.name });
    const ready = vi.spyOn(commands, "onAgentReady");

    const queued = await store.db.transaction().execute(async (trx) => {
      const stored = await commands.enqueueManyIn(trx, [{ vmName: vm!.name, name: "notebook.restart" }]);
      expect(stored.outcomes[0]).toMatchObject({ ok: true, value: { command: { state: "queued" } } });
      // The agent connects and its queue is read, all before this transaction commits.
      await agent!.connect();
      await vi.waitFor(() => expect(ready).toHaveBeenCalledWith(vm!.name));
      await ready.mock.results[0]!.value;
      return stored;
    });
    queued.dispatch();

    const { id } = (queued.outcomes[0] as Stored).value.command;
    await agent.waitFor(() => agent!.executed.length > 0, 5000, "the queued command");
    expect(agent.executed.map((e) => e.command.id)).toEqual([id]);
    await expect.poll(async () => (await commands.get(id))?.state, { timeout: 5000 }).toBe("succeeded");
    expect((await commands.get(id))?.attempts).toBe(1);
  });

  it("reaches the agent on the replica it moved to while a command stored as sent for it was committed", async () => {
    const databaseUrl = await freshDatabaseUrl();
    controller = await startTestController({ settings: { databaseUrl } });
    const a = controller;
    const b = await startTestController({ settings: { databaseUrl, adminToken: a.adminToken } });
    others.push(b);
    const [vm] = await seedVms(a.app, { count: 1 });
    agent = new SimAgent({ url: a.url, token: vm!.credential, hostname: vm!.name });
    await agent.connect();
    const readyOnB = vi.spyOn(b.app.nbfleet.commands, "onAgentReady");

    const stored = await a.app.nbfleet.store.db.transaction().execute(async (trx) => {
      const out = await a.app.nbfleet.commands.enqueueManyIn(trx, [
        { vmName: vm!.name, name: "notebook.restart" },
      ]);
      expect(out.outcomes[0]).toMatchObject({ ok: true, value: { command: { state: "sent" } } });
      // The agent leaves a and is welcomed by b, whose read of its queue comes before this commit.
      agent!.close();
      await vi.waitFor(() => expect(a.app.nbfleet.gateway.isConnected(vm!.name)).toBe(false));
      agent!.options.url = b.url;
      await agent!.connect();
      await vi.waitFor(() => expect(readyOnB).toHaveBeenCalledWith(vm!.name));
      await readyOnB.mock.results[0]!.value;
      return out;
    });
    stored.dispatch();

    const { id } = (stored.outcomes[0] as Stored).value.command;
    await agent.waitFor(() => agent!.executed.length > 0, 5000, "the command sent for it on a");
    expect(agent.executed.map((e) => e.command.id)).toEqual([id]);
    await expect
      .poll(async () => (await b.app.nbfleet.commands.get(id))?.state, { timeout: 5000 })
      .toBe("succeeded");
  });
});

describe("a command sent on the new connection while its welcome reads the queue", () => {
  it("goes out once, on SQLite and on PostgreSQL", async () => {
    for (const settings of [{}, { databaseUrl: await freshDatabaseUrl() }]) {
      controller = await startTestController({ settings });
      const { commands, store } = controller.app.nbfleet;
      const [vm] = await seedVms(controller.app, { count: 1 });
      let release = () => {};
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const read = store.commands.deliverableFor.bind(store.commands);
      const reading = vi
        .spyOn(store.commands, "deliverableFor")
        .mockImplementation(async (...args) => gate.then(() => read(...args)));
      const ready = vi.spyOn(commands, "onAgentReady");
      agent = new SimAgent({ url: controller.url, token: vm!.credential, hostname: vm!.name });
      await agent.connect();
      await vi.waitFor(() => expect(reading).toHaveBeenCalled());

      // Connected: stored as sent and sent on the new connection, before the queue is read.
      const first = await commands.enqueue({ vmName: vm!.name, name: "notebook.restart" });
      expect(first).toMatchObject({ command: { state: "sent" }, delivered: true });
      release();
      await ready.mock.results[0]!.value;
      // Frames keep their order on one connection: a second copy would come before this one.
      const marker = await commands.enqueue({ vmName: vm!.name, name: "notebook.stop" });
      await agent.waitFor(
        () => agent!.commands().some((c) => c.id === marker.command.id),
        5000,
        "the marker",
      );

      expect(agent.commands().map((c) => c.id)).toEqual([first.command.id, marker.command.id]);
      vi.restoreAllMocks();
      agent.close();
      await controller.close();
      agent = undefined;
      controller = undefined;
    }
  });
});
