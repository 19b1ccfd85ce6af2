import { CloseCode } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { SimAgent } from "@nbfleet/testkit/sim-agent";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";

let controller: TestController;
afterEach(async () => {
  await controller?.close();
});

describe.each(STORE_DIALECTS)("VM API on %s: bad input", (dialect) => {
  it("answers 400 naming the field for malformed bodies", async () => {
    controller = await startTestController({ settings: await freshStoreLocation(dialect), listen: false });
    const token = controller.adminToken;
    const cases: Array<[unknown, string]> = [
      [{}, "name"],
      [{ name: "Bad_Name" }, "name"],
      [{ name: "ok", labels: { team: 5 } }, "labels.team"],
      [{ name: "ok", labels: "team=a" }, "labels"],
      [{ name: "ok", colour: "blue" }, "colour"],
      [{ name: "ok", password: "short" }, "password"],
    ];
    for (const [body, field] of cases) {
      const res = await call(controller.app, "POST", "/v1/vms", { token, body });
      expect(res.statusCode, JSON.stringify(body)).toBe(400);
      const { error } = res.json();
      expect(error.code).toBe("NBF_INVALID_BODY");
      expect(error.details.field).toBe(field);
      expect(error.message).toContain(field);
    }
    const notJson = await call(controller.app, "POST", "/v1/vms", { token, body: "{name: oops" });
    expect(notJson.statusCode).toBe(400);
    expect(notJson.json().error.code).toBe("NBF_INVALID_JSON");
    const badQuery = await call(controller.app, "GET", "/v1/vms?health=sparkly", { token });
    expect(badQuery.statusCode).toBe(400);
    expect(badQuery.json().error).toMatchObject({ code: "NBF_INVALID_QUERY", details: { field: "health" } });
    const badCursor = await call(controller.app, "GET", "/v1/vms?cursor=zzz", { token });
    expect(badCursor.json().error.code).toBe("NBF_CURSOR_INVALID");
    expect((await call(controller.app, "GET", "/v1/vms", { token })).json().items).toEqual([]);
  });

  it("answers 404 for an unknown VM or route, 409 for a duplicate, 413 for an oversized body", async () => {
    controller = await startTestController({ settings: await freshStoreLocation(dialect), listen: false });
    const { app, adminToken: token } = controller;
    for (const [method, url] of [
      ["GET", "/v1/vms/ghost"],
      ["DELETE", "/v1/vms/ghost"],
      ["POST", "/v1/vms/ghost/start"],
      ["POST", "/v1/vms/ghost/notebook/restart"],
    ] as const) {
      const res = await call(app, method, url, { token });
      expect(res.statusCode, url).toBe(404);
      expect(res.json().error).toMatchObject({ code: "NBF_VM_NOT_FOUND", details: { name: "ghost" } });
    }
    expect((await call(app, "GET", "/v1/nothing-here", { token })).json().error.code).toBe(
      "NBF_ROUTE_NOT_FOUND",
    );
    expect((await call(app, "GET", "/v1/commands/cmd_nope", { token })).json().error.code).toBe(
      "NBF_COMMAND_NOT_FOUND",
    );

    expect((await call(app, "POST", "/v1/vms", { token, body: { name: "dup" } })).statusCode).toBe(201);
    const dup = await call(app, "POST", "/v1/vms", { token, body: { name: "dup" } });
    expect(dup.statusCode).toBe(409);
    expect(dup.json().error.code).toBe("NBF_VM_EXISTS");

    const huge = {
      name: "big",
      labels: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`k${i}`, "x".repeat(250)])),
    };
    const padding = "y".repeat(app.nbfleet.settings.bodyLimitBytes);
    const tooLarge = await call(app, "POST", "/v1/vms", { token, body: { ...huge, padding } });
    expect(tooLarge.statusCode).toBe(413);
    expect(tooLarge.json().error.code).toBe("NBF_BODY_TOO_LARGE");
    expect(await app.nbfleet.store.vms.exists("big")).toBe(false);
  });

  it("records a provider failure on the VM and answers 502", async () => {
    const provider = new SimProvider();
    provider.failNext = { action: "create", message: "quota exceeded" };
    controller = await startTestController({
      provider,
      settings: await freshStoreLocation(dialect),
      listen: false,
    });
    const res = await call(controller.app, "POST", "/v1/vms", {
      token: controller.adminToken,
      body: { name: "f" },
    });
    expect(res.statusCode).toBe(502);
    expect(res.json().error).toMatchObject({ code: "NBF_PROVIDER_FAILED" });
    expect(res.json().error.message).toContain("quota exceeded");
    const vm = (await call(controller.app, "GET", "/v1/vms/f", { token: controller.adminToken })).json();
    expect(vm.state).toBe("failed");
    expect(vm.error).toContain("quota exceeded");
  });
});

describe.each(STORE_DIALECTS)("VM API on %s: lifecycle and listing", (dialect) => {
  it("creates a VM whose agent connects, reports health, and is deleted without a trace", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider, settings: await freshStoreLocation(dialect) });
    const { app, adminToken: token } = controller;
    const created = await call(app, "POST", "/v1/vms", {
      token,
      body: { name: "demo", labels: { team: "a" } },
    });
    expect(created.statusCode).toBe(201);
    const body = created.json();
    expect(body.password).toMatch(/^\S{20}$/);
    expect(body.vm).toMatchObject({ name: "demo", provider: "sim", state: "running", labels: { team: "a" } });
    expect(JSON.stringify(body.vm)).not.toContain(body.password);

    const agent = await provider.connected("demo");
    // The password reaches the agent only as its hash, and only the agent gets the hash: one
    // could be guessed offline, so no answer of the API (a viewer's included) shows it.
    await agent.waitFor(() => agent.passwordHashes.length === 1, 5000, "password.set");
    expect(agent.passwordHashes[0]).toMatch(/^argon2:\$argon2id\$/);
    expect(body.passwordCommand.params).toEqual({ hash: "[redacted]" });
    const viewer = (
      await call(app, "POST", "/v1/tokens", { token, body: { name: "v", role: "viewer" } })
    ).json().token;
    const commandId = body.passwordCommand.id;
    for (const route of ["/v1/vms/demo/commands", `/v1/commands/${commandId}`]) {
      for (const reader of [viewer, token]) {
        const read = await call(app, "GET", route, { token: reader });
        expect(read.statusCode).toBe(200);
        expect(read.body).toContain(commandId);
        expect(read.body).not.toContain("argon2");
      }
    }
    const vm = await eventually(
      async () => (await call(app, "GET", "/v1/vms/demo", { token })).json(),
      (v) => v.health.status === "healthy",
    );
    expect(vm.agent.status).toBe("connected");
    expect(vm.notebook).toMatchObject({ state: "running", pid: agent.pidNow, restarts: 0 });
    expect(vm.notebook.certificate.fingerprintSha256).toBe("AA:BB:CC:DD");
    expect(vm.health.checks.map((c: { name: string }) => c.name)).toContain("tls");

    const stopped = await call(app, "POST", "/v1/vms/demo/stop", { token });
    expect(stopped.json().state).toBe("stopped");
    await eventually(
      async () => (await call(app, "GET", "/v1/vms/demo", { token })).json(),
      (v) => v.agent.status === "disconnected" && v.health.status === "unknown",
    );
    expect((await call(app, "POST", "/v1/vms/demo/start", { token })).json().state).toBe("running");
    await eventually(
      async () => (await call(app, "GET", "/v1/vms/demo", { token })).json(),
      (v) => v.agent.status === "connected" && v.health.status === "healthy",
    );

    expect((await call(app, "DELETE", "/v1/vms/demo", { token })).statusCode).toBe(204);
    expect((await call(app, "GET", "/v1/vms/demo", { token })).statusCode).toBe(404);
    expect(provider.calls.map((c) => c.action)).toEqual(["create", "stop", "start", "delete"]);
    // The deleted VM's credential is dead.
    expect(app.nbfleet.gateway.isConnected("demo")).toBe(false);
    const ghost = new SimAgent({ url: controller.url, token: agent.credential! });
    await expect(ghost.connect()).rejects.toMatchObject({ httpStatus: 401 });
  });

  it("filters by labels, state and health and pages with a cursor", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider, settings: await freshStoreLocation(dialect) });
    const { app, adminToken: token } = controller;
    for (let i = 0; i < 7; i++) {
      const labels = { team: i < 4 ? "a" : "b", env: i % 2 === 0 ? "prod" : "dev" };
      await call(app, "POST", "/v1/vms", { token, body: { name: `n${i}`, labels } });
    }
    for (let i = 0; i < 7; i++) await provider.connected(`n${i}`);
    provider.agent({ name: "n1" }).setNotebook("failed");
    await call(app, "POST", "/v1/vms/n6/stop", { token });
    const list = async (query: string) => (await call(app, "GET", `/v1/vms?${query}`, { token })).json();
    await eventually(
      () => list("health=unhealthy"),
      (r) => r.items.length === 1,
    );
    expect((await list("label=team=a")).items.map((v: { name: string }) => v.name)).toEqual([
      "n0",
      "n1",
      "n2",
      "n3",
    ]);
    expect((await list("label=team=a&label=env=prod")).items.map((v: { name: string }) => v.name)).toEqual([
      "n0",
      "n2",
    ]);
    // All conditions must hold: one key with two values matches nothing, not the last value.
    expect((await list("label=team=a&label=team=b")).items).toEqual([]);
    expect((await list("label=team=b&label=team=a")).items).toEqual([]);
    expect((await list("label=team=a&label=team=a")).items).toHaveLength(4);
    expect((await list("health=unhealthy")).items[0].name).toBe("n1");
    expect((await list("state=stopped")).items.map((v: { name: string }) => v.name)).toEqual(["n6"]);
    await eventually(
      () => list("health=unknown"),
      (r) => r.items.length === 1 && r.items[0].name === "n6",
    );
    const names: string[] = [];
    let cursor: string | null = null;
    do {
      const page: { items: Array<{ name: string }>; nextCursor: string | null } = await list(
        `limit=3${cursor ? `&cursor=${cursor}` : ""}`,
      );
      expect(page.items.length).toBeLessThanOrEqual(3);
      names.push(...page.items.map((v) => v.name));
      cursor = page.nextCursor;
    } while (cursor);
    expect(names).toEqual(["n0", "n1", "n2", "n3", "n4", "n5", "n6"]);
  });
});
