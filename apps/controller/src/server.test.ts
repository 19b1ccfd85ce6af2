import { Writable } from "node:stream";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { call } from "@nbfleet/testkit/http";
import { SimAgent } from "@nbfleet/testkit/sim-agent";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import { eventually } from "@nbfleet/testkit/wait";
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { defaultSettings } from "./config/settings.js";
import { REDACT_PATHS, buildServer, listen } from "./server.js";

let controller: TestController | undefined;
afterEach(async () => {
  await controller?.close();
  controller = undefined;
});

describe("controller server", () => {
  it("keeps VMs, tokens and queued commands across a restart, and agents come back", async () => {
    const dataDir = makeDataDir();
    const provider = new SimProvider();
    controller = await startTestController({ provider, settings: { dataDir } });
    const admin = controller.adminToken;
    await call(controller.app, "POST", "/v1/vms", {
      token: admin,
      body: { name: "keep", labels: { team: "x" } },
    });
    const agent = await provider.connected("keep");
    await agent.waitFor(() => agent.passwordHashes.length === 1);
    const viewer = (
      await call(controller.app, "POST", "/v1/tokens", { token: admin, body: { name: "v", role: "viewer" } })
    ).json();
    agent.close();
    await eventually(
      async () => (await call(controller!.app, "GET", "/v1/vms/keep", { token: admin })).json(),
      (v) => v.agent.status === "disconnected",
    );
    const queued = (
      await call(controller.app, "POST", "/v1/vms/keep/notebook/restart", { token: admin })
    ).json();
    expect(queued.state).toBe("queued");
    await controller.close();

    controller = await startTestController({ provider: new SimProvider(), settings: { dataDir } });
    expect(controller.adminToken).toBe(admin);
    expect(controller.app.nbfleet.adminToken.created).toBe(false);
    const vm = (await call(controller.app, "GET", "/v1/vms/keep", { token: viewer.token })).json();
    expect(vm).toMatchObject({ name: "keep", labels: { team: "x" }, agent: { status: "disconnected" } });
    expect(vm.health.status).toBe("unknown");
    expect(
      (await call(controller.app, "GET", `/v1/commands/${queued.id}`, { token: admin })).json().state,
    ).toBe("queued");

    // The agent reconnects to the new controller with its credential and gets the queued command.
    const back = new SimAgent({ url: controller.url, token: agent.credential! });
    await back.connect();
    const done = (
      await call(controller.app, "GET", `/v1/commands/${queued.id}?wait=5`, { token: admin })
    ).json();
    expect(done.state).toBe("succeeded");
    await eventually(
      async () => (await call(controller!.app, "GET", "/v1/vms/keep", { token: admin })).json(),
      (v) => v.agent.status === "connected" && v.health.status === "healthy",
    );
    back.close();
  });

  it("marks connected agents disconnected when it shuts down, flushing the store", async () => {
    const dataDir = makeDataDir();
    const provider = new SimProvider({ reconnect: undefined });
    controller = await startTestController({ provider, settings: { dataDir, stateFlushMs: 60_000 } });
    await call(controller.app, "POST", "/v1/vms", { token: controller.adminToken, body: { name: "s" } });
    await provider.connected("s");
    await controller.close();
    controller = await startTestController({ settings: { dataDir }, listen: false });
    const vm = await controller.app.nbfleet.store.vms.require("s");
    expect(vm.status.agentStatus).toBe("disconnected");
    expect(vm.status.notebook?.state).toBe("running");
    const events = await controller.app.nbfleet.store.events.list({ vmName: "s", limit: 100 });
    expect(events.map((e) => e.kind)).toEqual(expect.arrayContaining(["vm.created", "agent.connected"]));
  });

  it("serves /healthz, /metrics and the OpenAPI document", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider });
    const { app, adminToken: token } = controller;
    await call(app, "POST", "/v1/vms", { token, body: { name: "m" } });
    await provider.connected("m");
    const restart = (await call(app, "POST", "/v1/vms/m/notebook/restart", { token })).json();
    await call(app, "GET", `/v1/commands/${restart.id}?wait=5`, { token });

    const health = await call(app, "GET", "/healthz");
    expect(health.json()).toMatchObject({
      status: "ok",
      provider: "sim",
      agentsConnected: 1,
      store: { status: "ok" },
    });
    const metrics = (await call(app, "GET", "/metrics")).body;
    expect(metrics).toContain("nbfleet_agents_connected 1");
    expect(metrics).toMatch(/nbfleet_vms\{health="healthy"\} 1/);
    expect(metrics).toMatch(
      /nbfleet_command_duration_seconds_count\{command="notebook.restart",outcome="succeeded"\} 1/,
    );

    const docs = (await call(app, "GET", "/docs/json")).json();
    expect(docs.openapi).toMatch(/^3\./);
    for (const path of [
      "/v1/vms",
      "/v1/vms/{name}",
      "/v1/vms/{name}/notebook/restart",
      "/v1/tokens",
      "/v1/events",
    ]) {
      expect(Object.keys(docs.paths)).toContain(path);
    }
    expect(
      docs.paths["/v1/vms"].post.requestBody.content["application/json"].schema.properties.name.pattern,
    ).toBeDefined();
    const page = await call(app, "GET", "/docs");
    expect(page.headers["content-type"]).toContain("text/html");
    expect(page.body).toContain("/docs/json");
  });

  it("keeps tokens and passwords out of its logs", async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const logger = pino({ level: "trace", redact: { paths: REDACT_PATHS, censor: "[redacted]" } }, sink);
    const provider = new SimProvider();
    const app = await buildServer(
      { ...defaultSettings(), dataDir: makeDataDir(), listen: "127.0.0.1:0", logLevel: "trace" },
      { provider, logger },
    );
    try {
      await listen(app);
      const token = app.nbfleet.adminToken.token!;
      const password = "a-very-secret-password";
      await app.inject({
        method: "POST",
        url: "/v1/vms",
        headers: { authorization: `Bearer ${token}` },
        payload: { name: "logged", password },
      });
      const agent = await provider.connected("logged");
      app.log.info(
        { token, password, credential: agent.credential, headers: { authorization: `Bearer ${token}` } },
        "probe",
      );
      const text = lines.join("");
      expect(text).toContain("probe");
      expect(text).toContain("[redacted]");
      for (const secret of [token, password, agent.credential!, agent.options.token])
        expect(text).not.toContain(secret);
    } finally {
      await app.close();
    }
  });
});
