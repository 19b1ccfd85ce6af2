/**
 * The periodic reconcile against provider `azure` on the emulator: a machine deleted outside
 * nbfleet becomes `failed` saying so, one deallocated outside nbfleet becomes `stopped`,
 * leftovers are reported once, and the interval really runs it.
 */
import type { RunningEmulator } from "@nbfleet/azure-emulator";
import type { VmView } from "@nbfleet/shared";
import { emulatorProvider, startTestEmulator } from "@nbfleet/testkit/azure";
import { startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { eventually } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { AzureClients } from "../providers/azure/clients.js";

let emu: RunningEmulator;

beforeAll(async () => {
  emu = await startTestEmulator();
});

afterAll(async () => {
  await emu?.close();
});

describe("reconcile", () => {
  it("marks machines gone or stopped outside nbfleet and reports orphans once", async () => {
    const provider = emulatorProvider(emu, { resourceGroup: "reconcile" });
    const c = await startTestController({ provider, listen: false, settings: { reconcileIntervalSec: 0 } });
    try {
      for (const name of ["r1", "r2", "r3"]) {
        await call(c.app, "POST", "/v1/vms", { token: c.adminToken, body: { name } });
      }
      const { compute } = (provider as unknown as { clients: AzureClients }).clients;
      await compute.virtualMachines.beginDeleteAndWait("reconcile", "r1");
      await compute.virtualMachines.beginDeallocateAndWait("reconcile", "r2");
      // r3 is forgotten by nbfleet but stays in Azure: an orphan.
      await c.app.nbfleet.store.vms.delete("r3");

      const outcome = await c.app.nbfleet.reconciler.runOnce();
      expect(outcome?.markedMissing).toEqual(["r1"]);
      expect(outcome?.stateChanged).toEqual([{ name: "r2", from: "running", to: "stopped" }]);
      const view = async (name: string) =>
        (await call(c.app, "GET", `/v1/vms/${name}`, { token: c.adminToken })).json() as VmView;
      expect(await view("r1")).toMatchObject({
        state: "failed",
        error: expect.stringMatching(/gone from provider azure/),
      });
      expect((await view("r2")).state).toBe("stopped");

      await c.app.nbfleet.store.writer.flush();
      const events = await c.app.nbfleet.store.events.list({ limit: 100 });
      expect(events.map((e) => e.kind)).toEqual(
        expect.arrayContaining(["vm.missing", "vm.state", "provider.orphans"]),
      );
      const orphanEvent = events.find((e) => e.kind === "provider.orphans")!;
      expect(orphanEvent.message).toMatch(/virtualMachines\/r3/);

      // Nothing changed: no new events.
      const again = await c.app.nbfleet.reconciler.runOnce();
      expect(again?.markedMissing).toEqual([]);
      await c.app.nbfleet.store.writer.flush();
      const later = await c.app.nbfleet.store.events.list({ limit: 100 });
      expect(later.filter((e) => e.kind === "provider.orphans")).toHaveLength(1);
    } finally {
      await c.close();
    }
  });

  it("runs on its interval", async () => {
    const provider = emulatorProvider(emu, { resourceGroup: "interval" });
    const c = await startTestController({ provider, listen: false, settings: { reconcileIntervalSec: 0.3 } });
    try {
      await call(c.app, "POST", "/v1/vms", { token: c.adminToken, body: { name: "p1" } });
      const { compute } = (provider as unknown as { clients: AzureClients }).clients;
      await compute.virtualMachines.beginDeleteAndWait("interval", "p1");
      const vm = await eventually(
        () => c.app.nbfleet.store.vms.require("p1"),
        (v) => v.state === "failed",
        20_000,
        100,
      );
      expect(vm.error).toMatch(/deleted outside nbfleet/);
    } finally {
      await c.close();
    }
  });
});
