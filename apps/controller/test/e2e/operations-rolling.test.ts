/**
 * A rolling notebook restart over real machines: `nbfleet server` with the local provider,
 * three sandboxes booted by the real bootstrap, real agents, Debian's Jupyter. One machine at
 * a time; each next one starts only after the previous one reported serving again after its
 * restart.
 */
import type { CommandView, VmView } from "@nbfleet/shared";
import {
  type ControllerProcess,
  api,
  startControllerProcess,
  stopControllerProcess,
} from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOKEN = "nbf_e2e-operations-rolling-0123456789";
const NAMES = ["roll-0", "roll-1", "roll-2"];
let controller: ControllerProcess;

interface Target {
  vmName: string;
  state: string;
  commandId: string;
  startedAt: string;
  finishedAt: string;
}

const vm = async (name: string) => (await api(controller)<VmView>("GET", `/v1/vms/${name}`)).body;
const serving = (v: VmView) =>
  v.agent.status === "connected" &&
  v.notebook.state === "running" &&
  (v.health.status === "healthy" || v.health.status === "degraded");

beforeAll(async () => {
  const dataDir = makeDataDir();
  controller = await startControllerProcess(dataDir, await freePort(), TOKEN, {
    NBFLEET_REPORT_INTERVAL_SEC: "2",
  });
  for (const name of NAMES) {
    const created = await api(controller)("POST", "/v1/vms", { name, labels: { ring: "canary" } });
    expect(created.status).toBe(201);
  }
  await Promise.all(
    NAMES.map((name) => waitFor(`${name} serving`, async () => serving(await vm(name)), 180_000)),
  );
}, 300_000);

afterAll(async () => {
  for (const name of NAMES) await api(controller)("DELETE", `/v1/vms/${name}`).catch(() => undefined);
  await stopControllerProcess(controller);
});

describe("a rolling restart over real agents", () => {
  it("restarts one machine at a time, each only after the previous one is serving again", async () => {
    const before = new Map<string, VmView>();
    for (const name of NAMES) before.set(name, await vm(name));
    const call = api(controller);
    const created = await call<{ operation: { id: string } }>("POST", "/v1/operations", {
      action: "notebook.restart",
      selector: { labels: "ring=canary" },
      maxConcurrency: 1,
      rolling: { enabled: true, healthTimeoutSec: 120 },
    });
    expect(created.status).toBe(201);
    const id = created.body.operation.id;
    const done = await waitFor(
      "the operation to end",
      async () => {
        const op = (
          await call<{ state: string; targets: { items: Target[] } }>("GET", `/v1/operations/${id}`)
        ).body;
        return op.state !== "running" && op;
      },
      300_000,
    );
    expect(done.state).toBe("succeeded");
    const targets = done.targets.items;
    expect(targets.map((t) => [t.vmName, t.state])).toEqual(NAMES.map((n) => [n, "succeeded"]));
    const gates: number[] = [];
    for (const [i, target] of targets.entries()) {
      const command = (await call<CommandView>("GET", `/v1/commands/${target.commandId}`)).body;
      gates.push(Date.parse(target.finishedAt) - Date.parse(command.finishedAt!));
      expect(command.state).toBe("succeeded");
      // The gate closed after the restart finished on the agent...
      expect(target.finishedAt >= command.finishedAt!).toBe(true);
      // ...and the next machine was touched only after it.
      const next = targets[i + 1];
      if (next) expect(next.startedAt >= target.finishedAt).toBe(true);
    }
    console.log(`health gate after each restart's result: ${gates.join(", ")} ms`);
    for (const name of NAMES) {
      const after = await vm(name);
      expect(serving(after)).toBe(true);
      expect(after.notebook.pid).not.toBe(before.get(name)!.notebook.pid);
      expect(after.notebook.restarts).toBe(before.get(name)!.notebook.restarts + 1);
    }
  }, 400_000);
});
