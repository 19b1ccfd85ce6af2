import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { SimFleet, seedVms } from "@nbfleet/testkit/sim-fleet";
import { STORE_DIALECTS, type StoreDialect, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { eventually } from "@nbfleet/testkit/wait";
import { verify } from "@node-rs/argon2";
import { afterEach, describe, expect, it } from "vitest";

let controller: TestController | undefined;
let fleet: SimFleet | undefined;
afterEach(async () => {
  fleet?.close();
  fleet = undefined;
  await controller?.close();
  controller = undefined;
});

async function fleetOf(
  dialect: StoreDialect,
  count: number,
  options: { labels?: (i: number) => Record<string, string>; delayMs?: number } = {},
) {
  controller = await startTestController({
    settings: { ...(await freshStoreLocation(dialect)), reportIntervalSec: 1 },
  });
  const vms = await seedVms(controller.app, { count, labels: options.labels });
  fleet = new SimFleet(controller.url, vms, { record: true, commandDelayMs: options.delayMs ?? 0 });
  await fleet.connectAll();
  return { app: controller.app, token: controller.adminToken, vms };
}

async function finished(app: TestController["app"], token: string, id: string) {
  return eventually(
    async () => (await call(app, "GET", `/v1/operations/${id}?targetsLimit=1000`, { token })).json(),
    (op) => op.state !== "running",
    30_000,
    50,
  );
}

describe.each(STORE_DIALECTS)("operations API on %s", (dialect) => {
  it("restarts the notebooks a label expression selects, with per-target status and events", async () => {
    const { app, token } = await fleetOf(dialect, 12, {
      labels: (i) => ({ team: i % 2 === 0 ? "a" : "b", ...(i % 3 === 0 ? { env: "prod" } : {}) }),
    });
    const events: string[] = [];
    app.nbfleet.bus.subscribe((e) => events.push(e.kind));
    const res = await call(app, "POST", "/v1/operations", {
      token,
      body: { action: "notebook.restart", selector: { labels: "team=a,env!=prod" }, maxConcurrency: 2 },
    });
    expect(res.statusCode).toBe(201);
    const created = res.json();
    expect(created.passwords).toBeNull();
    expect(created.operation).toMatchObject({
      action: "notebook.restart",
      total: 4,
      maxConcurrency: 2,
      maxErrors: 0,
    });
    const done = await finished(app, token, created.operation.id);
    expect(done.state).toBe("succeeded");
    expect(done.counts).toMatchObject({ succeeded: 4, failed: 0, pending: 0, running: 0 });
    // team=a and not env=prod: 2, 4, 8, 10
    expect(done.targets.items.map((t: { vmName: string }) => t.vmName)).toEqual([
      "sim-02",
      "sim-04",
      "sim-08",
      "sim-10",
    ]);
    for (const target of done.targets.items) {
      expect(target.state).toBe("succeeded");
      const agent = fleet!.byName(target.vmName)!;
      expect(agent.executed.map((e) => e.command.id)).toEqual([target.commandId]);
    }
    expect(fleet!.byName("sim-00")!.executed).toHaveLength(0);
    expect(events).toContain("operation.created");
    await eventually(
      async () => events,
      (e) => e.includes("operation.finished"),
    );
    const list = (await call(app, "GET", "/v1/operations", { token })).json();
    expect(list.items.map((o: { id: string }) => o.id)).toEqual([created.operation.id]);
  });

  it("rotates passwords: each target gets its own, shown once, and only the hash reaches the agent", async () => {
    const { app, token } = await fleetOf(dialect, 3);
    const res = await call(app, "POST", "/v1/operations", {
      token,
      body: { action: "notebook.password", selector: { all: true }, maxConcurrency: 3 },
    });
    expect(res.statusCode).toBe(201);
    expect(res.headers["cache-control"]).toBe("no-store");
    const { operation, passwords } = res.json();
    expect(Object.keys(passwords)).toEqual(["sim-0", "sim-1", "sim-2"]);
    expect(new Set(Object.values(passwords)).size).toBe(3);
    const done = await finished(app, token, operation.id);
    expect(done.state).toBe("succeeded");
    for (const [name, password] of Object.entries<string>(passwords)) {
      const agent = fleet!.byName(name)!;
      expect(agent.passwordHashes).toHaveLength(1);
      const hash = agent.passwordHashes[0]!;
      expect(hash.startsWith("argon2:$argon2id$")).toBe(true);
      expect(await verify(hash.slice("argon2:".length), password)).toBe(true);
      expect((await app.nbfleet.store.vms.require(name)).passwordHash).toBe(hash);
      expect(JSON.stringify(agent.received)).not.toContain(password);
    }
    const again = (await call(app, "GET", `/v1/operations/${operation.id}`, { token })).body;
    for (const password of Object.values<string>(passwords)) expect(again).not.toContain(password);
  });

  it("rolls in batches: the next batch starts only once the last one is serving again", async () => {
    const { app, token } = await fleetOf(dialect, 6, { delayMs: 50 });
    // sim-3's notebook comes back from its restart failed: the gate holds and the budget stops the rollout.
    const broken = fleet!.byName("sim-3")!;
    broken.options.fail = () => {
      setTimeout(() => broken.setNotebook("failed"), 5);
      return undefined;
    };
    const res = await call(app, "POST", "/v1/operations", {
      token,
      body: {
        action: "notebook.restart",
        selector: { all: true },
        maxConcurrency: 2,
        rolling: { enabled: true, healthTimeoutSec: 2.5 },
      },
    });
    const done = await finished(app, token, res.json().operation.id);
    const t = done.targets.items as Array<{
      vmName: string;
      state: string;
      commandId: string;
      startedAt: string;
      finishedAt: string;
      error: { code: string } | null;
    }>;
    expect(t.map((x) => x.state)).toEqual([
      "succeeded",
      "succeeded",
      "succeeded",
      "failed",
      "skipped",
      "skipped",
    ]);
    expect(t[3]!.error?.code).toBe("NBF_TARGET_UNHEALTHY");
    expect(done.reason).toContain("error budget exceeded");
    // Batch 2 started after both of batch 1 were serving again.
    const batch1End = [t[0]!.finishedAt, t[1]!.finishedAt].sort()[1]!;
    expect(t[2]!.startedAt >= batch1End && t[3]!.startedAt >= batch1End).toBe(true);
    // Serving "again" means a report after the restart's result, not the one before it.
    for (const target of t.slice(0, 3)) {
      const command = await app.nbfleet.store.commands.get(target.commandId);
      expect(command!.state).toBe("succeeded");
      expect(target.finishedAt >= command!.finishedAt!).toBe(true);
    }
    expect(fleet!.byName("sim-4")!.executed).toHaveLength(0);
  }, 30_000);

  it("skips a target whose VM was deleted before its turn, and sends to the others", async () => {
    const { app, token, vms } = await fleetOf(dialect, 3, { delayMs: 300 });
    const created = (
      await call(app, "POST", "/v1/operations", {
        token,
        body: { action: "notebook.restart", selector: { all: true }, maxConcurrency: 1 },
      })
    ).json();
    const last = vms.at(-1)!.name;
    expect((await call(app, "DELETE", `/v1/vms/${last}`, { token })).statusCode).toBe(204);
    const done = await finished(app, token, created.operation.id);
    const byVm = new Map(
      done.targets.items.map((t: { vmName: string; state: string; error: { code: string } | null }) => [
        t.vmName,
        t,
      ]),
    );
    expect(byVm.get(last)).toMatchObject({ state: "skipped", error: { code: "NBF_TARGET_VM_GONE" } });
    expect(done.counts).toMatchObject({ succeeded: 2, skipped: 1 });
    const ran = fleet!.agents.flatMap((a) => a.executed.map(() => a.hostname));
    expect(ran).not.toContain(last);
  });

  it("refuses what cannot run, with the reason", async () => {
    const { app, token } = await fleetOf(dialect, 2);
    const post = (body: unknown) => call(app, "POST", "/v1/operations", { token, body });
    const empty = await post({ action: "notebook.restart", selector: {} });
    expect(empty.json().error.code).toBe("NBF_OPERATION_INVALID");
    const none = await post({ action: "notebook.restart", selector: { labels: "team=nobody" } });
    expect(none.statusCode).toBe(400);
    expect(none.json().error.code).toBe("NBF_OPERATION_NO_TARGETS");
    const bad = await post({ action: "notebook.restart", selector: { labels: "team=a,,x" } });
    expect(bad.json().error.code).toBe("NBF_SELECTOR_INVALID");
    const rolling = await post({
      action: "notebook.stop",
      selector: { all: true },
      rolling: { enabled: true },
    });
    expect(rolling.json().error).toMatchObject({ code: "NBF_OPERATION_INVALID" });
    expect(rolling.json().error.message).toContain("rolling");
    // A name that is no VM is a wrong value, named in a 404 like on every VM route; a selector
    // whose VMs all exist but that picks none of them is NBF_OPERATION_NO_TARGETS.
    const missing = await post({ action: "notebook.restart", selector: { names: ["sim-0", "ghost"] } });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error).toMatchObject({ code: "NBF_VM_NOT_FOUND", details: { name: "ghost" } });
    const allMissing = await post({ action: "notebook.restart", selector: { names: ["ghost", "phantom"] } });
    expect(allMissing.statusCode).toBe(404);
    expect(allMissing.json().error).toMatchObject({
      code: "NBF_VM_NOT_FOUND",
      details: { name: "ghost, phantom" },
    });
    const filteredOut = await post({
      action: "notebook.restart",
      selector: { names: ["sim-0"], labels: "team=nobody" },
    });
    expect(filteredOut.statusCode).toBe(400);
    expect(filteredOut.json().error.code).toBe("NBF_OPERATION_NO_TARGETS");
    const percent = await post({
      action: "notebook.restart",
      selector: { all: true },
      maxConcurrency: "150%",
    });
    expect(percent.json().error.code).toBe("NBF_OPERATION_INVALID");
    // Counts past any fleet are refused by the schema, naming the field, before they reach a
    // column (a bigint on PostgreSQL, which 1e19 overflows).
    for (const limits of [
      { maxErrors: 1e300 },
      { maxErrors: 1e19 },
      { maxConcurrency: 1e300 },
      { maxErrors: `1${"0".repeat(400)}%` },
      { canary: 1e19 },
    ]) {
      const huge = await post({ action: "notebook.restart", selector: { all: true }, ...limits });
      expect(huge.statusCode, JSON.stringify(limits)).toBe(400);
      const field = Object.keys(limits)[0]!;
      expect(huge.json().error.code, field).toBe("NBF_INVALID_BODY");
      expect(huge.json().error.message, field).toContain(field);
    }
    const unknown = await call(app, "GET", "/v1/operations/op_nope", { token });
    expect(unknown.statusCode).toBe(404);
    const viewer = (
      await call(app, "POST", "/v1/tokens", { token, body: { name: "v", role: "viewer" } })
    ).json();
    const forbidden = await call(app, "POST", "/v1/operations", {
      token: viewer.token,
      body: { action: "notebook.restart", selector: { all: true } },
    });
    expect(forbidden.statusCode).toBe(403);
    expect(await app.nbfleet.store.operations.list(10)).toHaveLength(0);
  });
});
