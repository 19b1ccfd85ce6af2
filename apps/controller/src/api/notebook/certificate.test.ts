import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import { afterEach, describe, expect, it } from "vitest";

let controller: TestController;
afterEach(async () => {
  await controller?.close();
});

describe("POST /v1/vms/{name}/notebook/certificate", () => {
  it("sends certificate.rotate with the extra names to the agent and reports the command", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider });
    const token = controller.adminToken;
    await call(controller.app, "POST", "/v1/vms", { token, body: { name: "nb" } });
    const agent = await provider.connected("nb");
    const res = await call(controller.app, "POST", "/v1/vms/nb/notebook/certificate", {
      token,
      body: { hostnames: ["nb.example.org"], ips: ["10.1.2.3"] },
    });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toMatchObject({ vmName: "nb", name: "certificate.rotate" });
    await agent.waitFor(() => agent.commands().some((c) => c.name === "certificate.rotate"), 5000, "rotate");
    const sent = agent.commands().find((c) => c.name === "certificate.rotate");
    expect(sent?.params).toEqual({ hostnames: ["nb.example.org"], ips: ["10.1.2.3"] });
  });

  it("refuses unknown fields and a viewer", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider });
    const token = controller.adminToken;
    await call(controller.app, "POST", "/v1/vms", { token, body: { name: "nb" } });
    const bad = await call(controller.app, "POST", "/v1/vms/nb/notebook/certificate", {
      token,
      body: { hostname: "typo" },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe("NBF_INVALID_BODY");
    const viewer = await call(controller.app, "POST", "/v1/tokens", {
      token,
      body: { name: "v", role: "viewer" },
    });
    const denied = await call(controller.app, "POST", "/v1/vms/nb/notebook/certificate", {
      token: viewer.json().token,
      body: {},
    });
    expect(denied.statusCode).toBe(403);
  });
});
