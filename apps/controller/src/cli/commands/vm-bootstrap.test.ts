import { setTimeout as sleep } from "node:timers/promises";
import { runCli } from "@nbfleet/testkit/cli";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { HandOverProvider } from "@nbfleet/testkit/hand-over-provider";
import { call } from "@nbfleet/testkit/http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let controller: TestController;

beforeAll(async () => {
  controller = await startTestController({
    provider: new HandOverProvider(),
    settings: { bootstrapTokenTtlSec: 1 },
  });
  const res = await call(controller.app, "POST", "/v1/vms", {
    token: controller.adminToken,
    body: { name: "late" },
  });
  expect(res.statusCode).toBe(201);
});

afterAll(async () => {
  await controller?.close();
});

const nbfleet = (...args: string[]) => runCli(controller, ...args);

describe("nbfleet vm bootstrap-token", () => {
  it("vm show says the token expired and how to get another; bootstrap-token issues it once", async () => {
    await sleep(1100);
    const shown = await nbfleet("vm", "show", "late");
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(
      /^bootstrap: +expired: the bootstrap token expired at \S+ before the agent used it/m,
    );
    expect(shown.stdout).toContain("nbfleet vm bootstrap-token late");

    const issued = await nbfleet("vm", "bootstrap-token", "late");
    expect(issued.code).toBe(0);
    expect(issued.stdout).toMatch(/^bootstrap token: nbfb_\S+ {3}\(shown once; expires \S+\)$/m);
    expect(issued.stdout).toContain("--bootstrap-token-file");
    const json = await nbfleet("--json", "vm", "bootstrap-token", "late");
    expect(JSON.parse(json.stdout)).toMatchObject({ vmName: "late", token: expect.stringMatching(/^nbfb_/) });

    const unknown = await nbfleet("vm", "bootstrap-token", "ghost");
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("NBF_VM_NOT_FOUND");
  }, 60_000);
});
