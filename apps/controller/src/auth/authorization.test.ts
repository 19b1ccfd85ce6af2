import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { CloseCode } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { call } from "@nbfleet/testkit/http";
import { SimAgent, SimConnectError } from "@nbfleet/testkit/sim-agent";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";
import { ADMIN_TOKEN_FILE } from "./admin-token.js";

let controller: TestController;
afterEach(async () => {
  await controller?.close();
});

async function tokenFor(role: "viewer" | "operator" | "admin"): Promise<string> {
  const res = await call(controller.app, "POST", "/v1/tokens", {
    token: controller.adminToken,
    body: { name: `${role}-1`, role },
  });
  expect(res.statusCode).toBe(201);
  return res.json().token;
}

describe("authorization", () => {
  it("asks for a token, refuses unknown ones and lets each role do only its part", async () => {
    controller = await startTestController({ listen: false });
    const { app } = controller;
    const viewer = await tokenFor("viewer");
    const operator = await tokenFor("operator");

    const none = await call(app, "GET", "/v1/vms");
    expect(none.statusCode).toBe(401);
    expect(none.json().error.code).toBe("NBF_AUTH_REQUIRED");
    const wrong = await call(app, "GET", "/v1/vms", { token: "nbf_not-a-real-token" });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().error.code).toBe("NBF_AUTH_INVALID");

    expect((await call(app, "GET", "/v1/vms", { token: viewer })).statusCode).toBe(200);
    const writes: Array<["POST" | "DELETE", string, unknown]> = [
      ["POST", "/v1/vms", { name: "v1" }],
      ["DELETE", "/v1/vms/v1", undefined],
      ["POST", "/v1/vms/v1/stop", undefined],
      ["POST", "/v1/vms/v1/notebook/restart", undefined],
      ["POST", "/v1/vms/v1/notebook/password", {}],
      ["POST", "/v1/tokens", { name: "x", role: "admin" }],
    ];
    for (const [method, url, body] of writes) {
      const res = await call(app, method, url, { token: viewer, body });
      expect(res.statusCode, `${method} ${url}`).toBe(403);
      expect(res.json().error.code).toBe("NBF_FORBIDDEN");
      expect(res.json().error.message).toContain("viewer");
    }
    // Operators run the fleet but do not hand out tokens.
    expect((await call(app, "POST", "/v1/vms", { token: operator, body: { name: "v1" } })).statusCode).toBe(
      201,
    );
    expect(
      (await call(app, "POST", "/v1/tokens", { token: operator, body: { name: "x", role: "admin" } }))
        .statusCode,
    ).toBe(403);
    expect((await call(app, "GET", "/v1/tokens", { token: operator })).statusCode).toBe(403);
    expect((await call(app, "GET", "/v1/tokens", { token: controller.adminToken })).statusCode).toBe(200);
    // Public routes need nothing.
    expect((await call(app, "GET", "/healthz")).statusCode).toBe(200);
  });

  it("refuses agent credentials and bootstrap tokens on the operator API", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider });
    await call(controller.app, "POST", "/v1/vms", { token: controller.adminToken, body: { name: "a" } });
    const agent = await provider.connected("a");
    expect(agent.credential).toMatch(/^nbfa_/);
    for (const secret of [agent.credential!, "nbfb_whatever"]) {
      const res = await call(controller.app, "GET", "/v1/vms", { token: secret });
      expect(res.statusCode).toBe(403);
      expect(res.json().error.code).toBe("NBF_AUTH_AGENT_CREDENTIAL");
    }
  });

  it("lets an agent act only for its own VM", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider });
    const { app, adminToken } = controller;
    await call(app, "POST", "/v1/vms", { token: adminToken, body: { name: "mine" } });
    await call(app, "POST", "/v1/vms", { token: adminToken, body: { name: "theirs" } });
    const mine = await provider.connected("mine");
    const theirs = await provider.connected("theirs");
    theirs.close();
    await eventually(
      async () => (await call(app, "GET", "/v1/vms/theirs", { token: adminToken })).json().agent.status,
      (s) => s === "disconnected",
    );
    const queued = (await call(app, "POST", "/v1/vms/theirs/notebook/restart", { token: adminToken })).json();
    expect(queued.state).toBe("queued");
    // The other VM's agent answers that command: ack and result are ignored.
    mine.sendMessage({ type: "ack", commandId: queued.id });
    mine.sendMessage({ type: "result", commandId: queued.id, ok: true, data: { forged: true } });
    mine.sendMessage({
      type: "event",
      event: { at: new Date().toISOString(), kind: "probe", level: "info", message: "after the forgery" },
    });
    // Messages of one connection are handled in order: once the probe is stored, so are the forgeries.
    await eventually(
      async () => {
        await app.nbfleet.store.writer.flush();
        return app.nbfleet.store.events.list({ vmName: "mine", limit: 100 });
      },
      (events) => events.some((e) => e.kind === "probe"),
    );
    const after = (await call(app, "GET", `/v1/commands/${queued.id}`, { token: adminToken })).json();
    expect(after.state).toBe("queued");
    expect(after.result).toBeNull();
    // The credential is bound to its VM: reconnecting with it is always "mine".
    const again = new SimAgent({ url: controller.url, token: mine.credential! });
    expect((await again.connect()).vmName).toBe("mine");
    again.close();
  });

  it("refuses operator tokens, spent bootstrap tokens and nonsense on the agent gateway", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider });
    await call(controller.app, "POST", "/v1/vms", { token: controller.adminToken, body: { name: "b" } });
    await provider.connected("b");
    // The bootstrap token is spent once the agent has connected with the credential it got.
    const b = provider.agent({ name: "b" });
    b.close();
    await b.waitFor(() => b.closes.length > 0, 5000, "its close");
    expect((await b.connect()).credential).toBeUndefined();
    for (const token of [
      controller.adminToken,
      provider.agent({ name: "b" }).options.token,
      "nbfa_nope",
      "",
    ]) {
      const agent = new SimAgent({ url: controller.url, token });
      const error = await agent.connect().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(SimConnectError);
      // Refused at the upgrade: never a WebSocket.
      expect((error as SimConnectError).httpStatus).toBe(401);
    }
  });

  it("writes the first admin token 0600 and takes NBFLEET_ADMIN_TOKEN", async () => {
    controller = await startTestController({ listen: false });
    const file = join(controller.dataDir, ADMIN_TOKEN_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, "utf8").trim()).toBe(controller.adminToken);
    expect(controller.app.nbfleet.adminToken.created).toBe(true);
    await controller.close();

    const given = "my-own-admin-token-0123456789";
    controller = await startTestController({
      settings: { dataDir: makeDataDir(), adminToken: given },
      listen: false,
    });
    expect(controller.adminToken).toBe(given);
    expect((await call(controller.app, "GET", "/v1/tokens", { token: given })).statusCode).toBe(200);
  });
});
