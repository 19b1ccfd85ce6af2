/**
 * The wiring of provider `azure` in the real `nbfleet server` process: chosen by
 * NBFLEET_PROVIDER=azure, aimed at the emulator by NBFLEET_AZURE_ENDPOINT and
 * NBFLEET_AZURE_CA_FILE (static test credential), with AZURE_SUBSCRIPTION_ID and the resource
 * group from the environment, and the periodic reconcile on NBFLEET_RECONCILE_INTERVAL_SEC.
 */
import { ComputeManagementClient } from "@azure/arm-compute";
import type { RunningEmulator } from "@nbfleet/azure-emulator";
import type { VmView } from "@nbfleet/shared";
import { TEST_SUBSCRIPTION, startTestEmulator } from "@nbfleet/testkit/azure";
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

const TOKEN = "nbf_e2e-azure-process-token-0123";
const RG = "nbfleet-process";
let emu: RunningEmulator;
let controller: ControllerProcess;

beforeAll(async () => {
  emu = await startTestEmulator();
  controller = await startControllerProcess(makeDataDir(), await freePort(), TOKEN, {
    NBFLEET_PROVIDER: "azure",
    AZURE_SUBSCRIPTION_ID: TEST_SUBSCRIPTION,
    NBFLEET_AZURE_RESOURCE_GROUP: RG,
    NBFLEET_AZURE_ENDPOINT: emu.endpoint,
    NBFLEET_AZURE_CA_FILE: emu.caFile,
    NBFLEET_RECONCILE_INTERVAL_SEC: "0.5",
  });
});

afterAll(async () => {
  if (controller) await stopControllerProcess(controller);
  await emu?.close();
});

describe("nbfleet server with NBFLEET_PROVIDER=azure", () => {
  it("creates machines through the emulator and notices one deleted outside nbfleet", async () => {
    const created = await api(controller)<{ vm: VmView }>("POST", "/v1/vms", { name: "proc1" });
    expect(created.status).toBe(201);
    expect(created.body.vm).toMatchObject({ provider: "azure", state: "running" });
    const vm = emu.emulator.inventory().resources.find((r) => r.name === "proc1");
    expect(vm).toMatchObject({ resourceGroup: RG, powerState: "running", tags: { "nbfleet-vm": "proc1" } });

    const credential = { getToken: async () => ({ token: "t", expiresOnTimestamp: Date.now() + 3_600_000 }) };
    const compute = new ComputeManagementClient(credential, TEST_SUBSCRIPTION, {
      endpoint: emu.endpoint,
      tlsOptions: { ca: emu.caPem },
    });
    await compute.virtualMachines.beginDeleteAndWait(RG, "proc1");
    const failed = await waitFor("proc1 marked gone", async () => {
      const view = (await api(controller)<VmView>("GET", "/v1/vms/proc1")).body;
      return view.state === "failed" && view;
    });
    expect(failed.error).toMatch(/gone from provider azure \(deleted outside nbfleet\)/);

    expect((await api(controller)("DELETE", "/v1/vms/proc1")).status).toBe(204);
    expect(emu.emulator.inventory().resources.filter((r) => r.name.startsWith("proc1"))).toEqual([]);
  });
});
