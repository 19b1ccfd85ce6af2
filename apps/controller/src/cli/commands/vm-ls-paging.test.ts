import type { VmView } from "@nbfleet/shared";
import { runCli } from "@nbfleet/testkit/cli";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// More than one page of GET /v1/vms (at most 1000 a page), so `vm ls` must follow the cursors.
const COUNT = 1003;
let controller: TestController;
let names: string[];

beforeAll(async () => {
  controller = await startTestController();
  const seeded = await seedVms(controller.app, {
    count: COUNT,
    labels: (i) => ({ tier: i === 7 ? "gold" : "plain" }),
  });
  names = seeded.map((vm) => vm.name);
}, 120_000);

afterAll(async () => {
  await controller?.close();
});

const listed = async (...args: string[]) => {
  const run = await runCli(controller, "--json", "vm", "ls", ...args);
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as VmView[]).map((vm) => vm.name);
};

describe("nbfleet vm ls over several pages", () => {
  it("keeps a sort and a label expression across pages, every machine once", async () => {
    expect(await listed("--sort", "name", "--desc")).toEqual([...names].reverse());
    // Every machine is in the same state: ties go by name, A to Z, in either order.
    expect(await listed("--sort", "state", "--desc")).toEqual(names);
    const plain = await listed("--labels", "tier=plain", "--sort", "name", "--desc");
    expect(plain).toHaveLength(COUNT - 1);
    expect(plain).toEqual(names.filter((name) => name !== names[7]).reverse());
  }, 120_000);
});
