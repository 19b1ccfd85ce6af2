/**
 * Provider `azure` end to end, offline: the controller makes machines through the real Azure
 * SDK against the HTTPS Resource Manager emulator, whose VMs boot their cloud-init customData
 * through the real bootstrap; the bundled agents connect and serve Debian's Jupyter. Three
 * machines created at once → healthy → stopped (deallocated) → started → notebook restart →
 * deleted: the emulator then holds only the fleet's shared resources, and nothing after the
 * fleet is torn down.
 */
import { rm } from "node:fs/promises";
import https from "node:https";
import path from "node:path";
import { type RunningEmulator, startEmulator } from "@nbfleet/azure-emulator";
import { buildAgentArtifact } from "@nbfleet/scripts";
import type { CommandView, VmView } from "@nbfleet/shared";
import { FAST_DURATIONS, emulatorProvider } from "@nbfleet/testkit/azure";
import { api as client } from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { servingButForLoad as serving } from "@nbfleet/testkit/vm-serving";
import { waitFor as waitUntil } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultSettings } from "../../src/config/settings.js";
import type { AzureProvider } from "../../src/providers/azure/azure-provider.js";
import { type NbfleetApp, buildServer, listen } from "../../src/server.js";

const NAMES = ["az1", "az2", "az3"];
const RG = "nbfleet-e2e";
let root: string;
let emu: RunningEmulator;
let provider: AzureProvider;
let app: NbfleetApp;
let url: string;
let token: string;

const api = <T>(method: string, route: string, body?: unknown) =>
  client({ url, token })<T>(method, route, body);

const vm = async (name: string) => (await api<VmView>("GET", `/v1/vms/${name}`)).body;

/** Machines boot real agents and Jupyter: allow them longer than the test kit's default. */
const waitFor = <T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 300_000) =>
  waitUntil(what, probe, timeoutMs);

const allServing = () =>
  waitFor(`${NAMES.join(", ")} serving`, async () => {
    const views = await Promise.all(NAMES.map(vm));
    return views.every(serving) && views;
  });

function notebookAnswers(notebookUrl: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get(
      new URL("api", notebookUrl),
      { rejectUnauthorized: false, timeout: 3000 },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
  });
}

const inventory = () => emu.emulator.inventory();

/** Where a guest really serves its notebook: a loopback port here (a real VM: its public URL). */
function guestNotebook(name: string): string {
  const machine = inventory().resources.find(
    (r) => r.type === "Microsoft.Compute/virtualMachines" && r.name === name,
  );
  const port = machine?.guest?.notebookPort;
  if (!port) throw new Error(`the emulator has no notebook port for ${name}`);
  return `https://127.0.0.1:${port}/`;
}

beforeAll(async () => {
  // Mode 0755: notebooks run as the unprivileged `nbfleet` user when we are root; it must reach the guests.
  root = makeDataDir("nbf-azure-e2e-");
  const artifact = await buildAgentArtifact({ outDir: path.join(root, "artifact") });
  emu = await startEmulator({
    dataDir: path.join(root, "emulator"),
    guests: "sandbox",
    durations: FAST_DURATIONS,
  });
  provider = emulatorProvider(emu, { resourceGroup: RG, artifact });
  app = await buildServer(
    {
      ...defaultSettings(),
      dataDir: path.join(root, "controller"),
      listen: "127.0.0.1:0",
      logLevel: "silent",
      stateFlushMs: 20,
      commandSweepMs: 50,
      reportIntervalSec: 2,
    },
    { provider, artifact },
  );
  url = await listen(app);
  token = app.nbfleet.adminToken.token!;
});

afterAll(async () => {
  await app?.close();
  await emu?.close();
  await rm(root, { recursive: true, force: true });
});

describe("an Azure fleet on the emulator, with real agents and Jupyter", () => {
  it("creates three machines at once and all become healthy", async () => {
    const created = await Promise.all(NAMES.map((name) => api<{ vm: VmView }>("POST", "/v1/vms", { name })));
    expect(created.map((r) => r.status)).toEqual([201, 201, 201]);
    expect(created.map((r) => r.body.vm.provider)).toEqual(["azure", "azure", "azure"]);
    const views = await allServing();
    for (const view of views) {
      expect(view.state).toBe("running");
      // The agent reports the public URL (443, redirected to the private port), as on Azure.
      expect(view.notebook.url).toMatch(
        new RegExp(`^https://${view.name}-[0-9a-f]{6}\\.westeurope\\.cloudapp\\.azure\\.com/$`),
      );
      expect(await notebookAnswers(guestNotebook(view.name))).toBe(true);
    }
    const machines = inventory()
      .resources.filter((r) => r.type === "Microsoft.Compute/virtualMachines")
      .sort((a, b) => a.name.localeCompare(b.name));
    expect(machines.map((m) => [m.name, m.powerState, m.guest?.state])).toEqual(
      NAMES.map((n) => [n, "running", "running"]),
    );
  });

  it("stops (deallocates) and starts them again", async () => {
    const before = await Promise.all(NAMES.map(vm));
    const stopped = await Promise.all(NAMES.map((name) => api<VmView>("POST", `/v1/vms/${name}/stop`)));
    expect(stopped.map((r) => r.body.state)).toEqual(["stopped", "stopped", "stopped"]);
    expect(
      inventory()
        .resources.filter((r) => r.powerState)
        .map((r) => r.powerState),
    ).toEqual(["deallocated", "deallocated", "deallocated"]);
    await waitFor("agents disconnected", async () =>
      (await Promise.all(NAMES.map(vm))).every((v) => v.agent.status === "disconnected"),
    );
    for (const view of before) expect(await notebookAnswers(guestNotebook(view.name))).toBe(false);

    const started = await Promise.all(NAMES.map((name) => api<VmView>("POST", `/v1/vms/${name}/start`)));
    expect(started.map((r) => r.body.state)).toEqual(["running", "running", "running"]);
    await allServing();
  });

  it("restarts a notebook server through its agent", async () => {
    const before = await vm("az2");
    const queued = await api<CommandView>("POST", "/v1/vms/az2/notebook/restart");
    expect(queued.status).toBe(202);
    const done = await api<CommandView>("GET", `/v1/commands/${queued.body.id}?wait=60`);
    expect(done.body).toMatchObject({ state: "succeeded" });
    const after = await waitFor("az2 serving with a new pid", async () => {
      const view = await vm("az2");
      return serving(view) && view.notebook.pid !== before.notebook.pid && view;
    });
    expect(after.notebook.restarts).toBeGreaterThanOrEqual(before.notebook.restarts);
  });

  it("deletes them: only the fleet's shared resources remain, and nothing after teardown", async () => {
    const deleted = await Promise.all(NAMES.map((name) => api("DELETE", `/v1/vms/${name}`)));
    expect(deleted.map((r) => r.status)).toEqual([204, 204, 204]);
    const left = inventory();
    expect(left.resourceGroups.map((g) => g.name)).toEqual([RG]);
    expect(left.resources.map((r) => r.type).sort()).toEqual([
      "Microsoft.Network/networkSecurityGroups",
      "Microsoft.Network/virtualNetworks",
    ]);
    const report = await provider.teardownFleet();
    expect(report.resourceGroupDeleted).toBe(true);
    expect(inventory()).toEqual({ resourceGroups: [], resources: [], operationsInProgress: 0 });
  });
});
