/**
 * Several controller URLs from the controller's settings to a connected agent: the real
 * controller (NBFLEET_CONTROLLER_URLS read through its settings loader) hands the list to the
 * provider with a new machine's bootstrap token, and the agent's link dials them in turn: the
 * first refuses, the second is this controller. The core is a fake: no Jupyter here.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { VmView } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { FakeCore } from "@nbfleet/testkit/fake-core";
import { HandOverProvider } from "@nbfleet/testkit/hand-over-provider";
import { type LinkHarness, startLink } from "@nbfleet/testkit/link-harness";
import { freePort } from "@nbfleet/testkit/ports";
import { afterEach, describe, expect, it } from "vitest";
import { loadSettings } from "../config/settings.js";

let controller: TestController | undefined;
let link: LinkHarness | undefined;

afterEach(async () => {
  await link?.stop();
  link = undefined;
  await controller?.close();
  controller = undefined;
});

async function vm(name: string): Promise<VmView> {
  const response = await fetch(`${controller!.url}/v1/vms/${name}`, {
    headers: { authorization: `Bearer ${controller!.adminToken}` },
  });
  return (await response.json()) as VmView;
}

describe("controller URLs: controller settings → bootstrap context → agent link", () => {
  it("a new machine's agent gets the list and connects through its second entry when the first refuses", async () => {
    const [port, deadPort] = [await freePort(), await freePort()];
    const dead = `http://127.0.0.1:${deadPort}`;
    const self = `http://127.0.0.1:${port}`;
    const { controllerUrls } = loadSettings({
      env: { NBFLEET_CONTROLLER_URLS: `${dead}, ${self}` },
      home: "/nonexistent",
    });
    expect(controllerUrls).toEqual([dead, self]);

    const provider = new HandOverProvider();
    controller = await startTestController({
      provider,
      settings: { listen: `127.0.0.1:${port}`, controllerUrls },
    });
    const created = await fetch(`${controller.url}/v1/vms`, {
      method: "POST",
      headers: { authorization: `Bearer ${controller.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "replicated", password: "a-long-password" }),
    });
    expect(created.status).toBe(201);
    const context = provider.contexts.get("replicated")!;
    expect(context.controllerUrl).toBe(self);
    expect(context.controllerUrls).toEqual([dead, self]);

    link = startLink({
      url: context.controllerUrls!,
      core: new FakeCore(),
      bootstrapToken: context.bootstrapToken,
    });
    await link.waitForStatus((s) => s.state === "connected", "connected");
    expect(link.link.status).toMatchObject({ url: `ws://127.0.0.1:${port}/v1/agent/connect` });
    const dialed = link.statuses.flatMap((s) => (s.status.state === "connecting" ? [s.status.url] : []));
    expect(dialed[0]).toBe(`ws://127.0.0.1:${deadPort}/v1/agent/connect`);
    const deadline = Date.now() + 10_000;
    while ((await vm("replicated")).agent.status !== "connected") {
      if (Date.now() > deadline) throw new Error("the controller never saw the agent connected");
      await sleep(50);
    }
  });

  it("without a list, the context carries only the one URL (the bootstrap stays as it was)", async () => {
    const provider = new HandOverProvider();
    controller = await startTestController({ provider });
    await fetch(`${controller.url}/v1/vms`, {
      method: "POST",
      headers: { authorization: `Bearer ${controller.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "single", password: "a-long-password" }),
    });
    const context = provider.contexts.get("single")!;
    expect(context.controllerUrl).toBe(controller.url);
    expect("controllerUrls" in context).toBe(false);
  });
});
