import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { afterEach, describe, expect, it } from "vitest";

let controller: TestController;
afterEach(async () => {
  await controller?.close();
});

describe.each(STORE_DIALECTS)("tokens on %s", (dialect) => {
  it("creates a token shown once, lists without secrets, revokes, and keeps the last admin", async () => {
    controller = await startTestController({ settings: await freshStoreLocation(dialect), listen: false });
    const { app, adminToken } = controller;
    const created = await call(app, "POST", "/v1/tokens", {
      token: adminToken,
      body: { name: "ci", role: "operator" },
    });
    expect(created.statusCode).toBe(201);
    const { id, token } = created.json();
    expect(token).toMatch(/^nbf_[A-Za-z0-9_-]{43}$/);
    expect((await call(app, "GET", "/v1/vms", { token })).statusCode).toBe(200);

    const list = (await call(app, "GET", "/v1/tokens", { token: adminToken })).json();
    expect(list.items.map((t: { role: string }) => t.role).sort()).toEqual(["admin", "operator"]);
    expect(JSON.stringify(list)).not.toContain(token);
    expect(JSON.stringify(list)).not.toContain(adminToken);

    expect((await call(app, "DELETE", `/v1/tokens/${id}`, { token: adminToken })).statusCode).toBe(204);
    const revoked = await call(app, "GET", "/v1/vms", { token });
    expect(revoked.statusCode).toBe(401);
    expect(revoked.json().error.code).toBe("NBF_AUTH_INVALID");
    expect((await call(app, "DELETE", `/v1/tokens/${id}`, { token: adminToken })).json().error.code).toBe(
      "NBF_TOKEN_NOT_FOUND",
    );

    const adminId = list.items.find((t: { role: string }) => t.role === "admin").id;
    const last = await call(app, "DELETE", `/v1/tokens/${adminId}`, { token: adminToken });
    expect(last.statusCode).toBe(409);
    expect(last.json().error.code).toBe("NBF_TOKEN_LAST_ADMIN");
    const bad = await call(app, "POST", "/v1/tokens", {
      token: adminToken,
      body: { name: "x", role: "root" },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.details.field).toBe("role");
  });
});
