/**
 * Deleting a VM while its provider still creates it, on provider `azure` against the emulator:
 * the delete lands while the fleet's network is laid out (slowed), so Azure has nothing of the
 * machine yet and the delete succeeds; the create then makes the IP, NIC and VM. It must delete
 * them itself and tell its caller (NBF_VM_BUSY), leaving nothing in Azure for the reconciler to
 * report. On SQLite with one controller; on PostgreSQL created on one replica, deleted on another.
 */
import { ALLOCATION_FAILED, type RunningEmulator } from "@nbfleet/azure-emulator";
import type { ControllerSettings } from "@nbfleet/controller";
import { emulatorProvider, startTestEmulator } from "@nbfleet/testkit/azure";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { call } from "@nbfleet/testkit/http";
import { STORE_DIALECTS, type StoreDialect, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { eventually } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let emu: RunningEmulator;

const resourcesIn = (resourceGroup: string, which: (name: string) => boolean = () => true) =>
  emu.emulator
    .inventory()
    .resources.filter((r) => r.resourceGroup === resourceGroup && which(r.name))
    .map((r) => `${r.type.split("/").pop()}/${r.name}`)
    .sort();
/** The machine's own resources: the VM, its disk, NIC and IP (not the fleet's NSG and VNet). */
const machineIn = (resourceGroup: string, vm: string) =>
  resourcesIn(resourceGroup, (name) => name === vm || name.startsWith(`${vm}-`));

beforeAll(async () => {
  emu = await startTestEmulator();
});

afterAll(async () => {
  await emu?.close();
});

/** The controller that creates and the one that deletes: one on SQLite, two replicas on PostgreSQL. */
async function controllers(dialect: StoreDialect, resourceGroup: string): Promise<TestController[]> {
  const start = (settings: Partial<ControllerSettings>) =>
    startTestController({
      provider: emulatorProvider(emu, { resourceGroup }),
      listen: false,
      settings: { reconcileIntervalSec: 0, ...settings },
    });
  if (dialect === "sqlite") return [await start({})];
  const { databaseUrl } = await freshStoreLocation(dialect);
  // One data dir, as replicas on one host share it (and with it the cluster's release key).
  const dataDir = makeDataDir("nbf-delete-during-create-");
  const first = await start({ databaseUrl, dataDir });
  return [first, await start({ databaseUrl, dataDir, adminToken: first.adminToken })];
}

async function deleteDuringCreate(dialect: StoreDialect, resourceGroup: string, name: string) {
  const replicas = await controllers(dialect, resourceGroup);
  const creator = replicas[0]!;
  const deleter = replicas.at(-1)!;
  const slowNetwork = emu.emulator.addFault({
    resourceType: "Microsoft.Network/virtualNetworks",
    method: "PUT",
    delayMs: 1500,
    count: 1,
  });
  try {
    const creating = call(creator.app, "POST", "/v1/vms", { token: creator.adminToken, body: { name } });
    // The VM is recorded and its provider lays out the fleet's network: nothing of it in Azure yet.
    await eventually(
      async () => resourcesIn(resourceGroup),
      (left) => left.some((r) => r.startsWith("virtualNetworks/")),
      10_000,
    );
    expect((await creator.app.nbfleet.store.vms.require(name)).state).toBe("provisioning");
    expect(machineIn(resourceGroup, name)).toEqual([]);
    const deleted = await call(deleter.app, "DELETE", `/v1/vms/${name}`, { token: deleter.adminToken });
    const created = await creating;
    const reports = await Promise.all(replicas.map((r) => r.app.nbfleet.reconciler.runOnce()));
    const gets = await Promise.all(
      replicas.map((r) => call(r.app, "GET", `/v1/vms/${name}`, { token: r.adminToken })),
    );
    return {
      deleted: deleted.statusCode,
      created: {
        status: created.statusCode,
        body: created.json() as { error?: { code: string; message: string } },
      },
      orphans: reports.map((r) => r?.report.orphans.map((o) => `${o.type.split("/").pop()}/${o.name}`)),
      gets: gets.map((g) => g.statusCode),
    };
  } finally {
    emu.emulator.faults.remove(slowNetwork);
    await Promise.all(replicas.map((r) => r.close()));
  }
}

describe.each(STORE_DIALECTS)("a VM deleted while it is being created (%s)", (dialect) => {
  it("the create deletes what it made and answers NBF_VM_BUSY: nothing left in Azure", async () => {
    const outcome = await deleteDuringCreate(dialect, `race-${dialect}`, "racy");
    expect(outcome.deleted).toBe(204);
    expect(machineIn(`race-${dialect}`, "racy")).toEqual([]);
    expect(outcome.orphans).toEqual(outcome.orphans.map(() => []));
    expect(outcome.created.status).toBe(409);
    expect(outcome.created.body.error?.code).toBe("NBF_VM_BUSY");
    expect(outcome.created.body.error?.message).toMatch(
      /^VM racy is delet(ing|ed); create is not possible now$/,
    );
    expect(outcome.gets).toEqual(outcome.gets.map(() => 404));
  });

  it("a create failing after the delete also answers NBF_VM_BUSY and leaves nothing", async () => {
    const fault = emu.emulator.addFault({ ...ALLOCATION_FAILED, name: "doomed" });
    try {
      const outcome = await deleteDuringCreate(dialect, `fail-${dialect}`, "doomed");
      expect(outcome.deleted).toBe(204);
      expect(machineIn(`fail-${dialect}`, "doomed")).toEqual([]);
      expect(outcome.orphans).toEqual(outcome.orphans.map(() => []));
      expect(outcome.created.status).toBe(409);
      expect(outcome.created.body.error?.code).toBe("NBF_VM_BUSY");
      expect(outcome.gets).toEqual(outcome.gets.map(() => 404));
    } finally {
      emu.emulator.faults.remove(fault);
    }
  });
});
