/**
 * Provider `azure` through the real Azure SDK against the emulator (guests off: these tests are
 * about Resource Manager, the e2e boots real agents): layout and tags, writes per machine,
 * power actions, faults (429 storm, 500 on NIC, failed VM operation), credentials, names,
 * bounded concurrency, reconcile and fleet teardown.
 */
import { ALLOCATION_FAILED, type RunningEmulator } from "@nbfleet/azure-emulator";
import type { VmView } from "@nbfleet/shared";
import { emulatorProvider, startTestEmulator } from "@nbfleet/testkit/azure";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { eventually } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { AzureProvider } from "./azure-provider.js";
import { chooseCredential, staticTokenCredential } from "./credential.js";
import { FLEET_TAG, VM_TAG } from "./fleet-network.js";

const EMULATOR_TOKEN = "nbfleet-emulator";
let emu: RunningEmulator;

const inventory = () => emu.emulator.inventory();
const namesOf = (vm: string) =>
  inventory()
    .resources.filter((r) => r.name === vm || r.name.startsWith(`${vm}-`))
    .map((r) => `${r.type.split("/").pop()}/${r.name}`)
    .sort();

async function withController<T>(
  provider: AzureProvider,
  work: (c: TestController) => Promise<T>,
): Promise<T> {
  const controller = await startTestController({ provider, listen: false });
  try {
    return await work(controller);
  } finally {
    await controller.close();
  }
}

async function createVm(c: TestController, name: string) {
  const response = await call(c.app, "POST", "/v1/vms", { token: c.adminToken, body: { name } });
  return {
    status: response.statusCode,
    body: response.json() as { vm: VmView; error?: { code: string; message: string } },
  };
}

beforeAll(async () => {
  emu = await startTestEmulator({ token: EMULATOR_TOKEN });
});

afterAll(async () => {
  await emu?.close();
});

beforeEach(() => {
  emu.emulator.faults.clear();
});

describe("provider azure against the emulator", () => {
  it("lays out the fleet once, then makes each machine with 3 writes: tagged IP, NIC and VM", async () => {
    const provider = emulatorProvider(emu, { resourceGroup: "layout" });
    await withController(provider, async (c) => {
      const first = await createVm(c, "nb1");
      expect(first.status).toBe(201);
      expect(first.body.vm.state).toBe("running");
      expect(first.body.vm.provider).toBe("azure");
      expect(first.body.vm.notebook.url).toMatch(
        /^https:\/\/nb1-[0-9a-f]{6}\.westeurope\.cloudapp\.azure\.com\/$/,
      );
      const shared = inventory().resources.filter((r) => r.resourceGroup === "layout" && !r.tags[VM_TAG]);
      expect(shared.map((r) => r.type).sort()).toEqual([
        "Microsoft.Compute/disks",
        "Microsoft.Network/networkSecurityGroups",
        "Microsoft.Network/virtualNetworks",
      ]);
      expect(namesOf("nb1")).toEqual([
        "disks/nb1-osdisk",
        "networkInterfaces/nb1-nic",
        "publicIPAddresses/nb1-ip",
        "virtualMachines/nb1",
      ]);
      const vm = inventory().resources.find((r) => r.name === "nb1")!;
      expect(vm.tags).toEqual({ [FLEET_TAG]: "layout", [VM_TAG]: "nb1" });
      expect(vm.powerState).toBe("running");

      emu.emulator.resetStats();
      expect((await createVm(c, "nb2")).body.vm.state).toBe("running");
      expect(emu.emulator.getStats().writes).toBe(3);

      const stopped = await call(c.app, "POST", "/v1/vms/nb2/stop", { token: c.adminToken });
      expect(stopped.json().state).toBe("stopped");
      expect(inventory().resources.find((r) => r.name === "nb2")?.powerState).toBe("deallocated");
      const restarted = await call(c.app, "POST", "/v1/vms/nb2/restart", { token: c.adminToken });
      expect(restarted.json().state).toBe("running");
      expect(inventory().resources.find((r) => r.name === "nb2")?.powerState).toBe("running");

      for (const name of ["nb1", "nb2"]) {
        expect((await call(c.app, "DELETE", `/v1/vms/${name}`, { token: c.adminToken })).statusCode).toBe(
          204,
        );
      }
      expect(namesOf("nb1")).toEqual([]);
      expect(namesOf("nb2")).toEqual([]);
      const report = await provider.teardownFleet();
      expect(report.resourceGroupDeleted).toBe(true);
      expect(inventory().resourceGroups.map((g) => g.name)).not.toContain("layout");
    });
  });

  it("POST /v1/fleet/teardown refuses while a machine is left, then deletes the fleet's network and group; a new machine lays them out again", async () => {
    const provider = emulatorProvider(emu, { resourceGroup: "teardown" });
    await withController(provider, async (c) => {
      expect((await createVm(c, "td1")).body.vm.state).toBe("running");
      const shared = () =>
        inventory()
          .resources.filter((r) => r.resourceGroup === "teardown" && !r.tags[VM_TAG])
          .map((r) => r.type)
          .filter((type) => type.startsWith("Microsoft.Network/"))
          .sort();
      const refused = await call(c.app, "POST", "/v1/fleet/teardown", { token: c.adminToken });
      expect(refused.statusCode).toBe(409);
      expect(refused.json().error).toMatchObject({ code: "NBF_FLEET_NOT_EMPTY" });
      expect(refused.json().error.message).toMatch(/still has 1 machine\(s\), td1 among them/);
      expect(shared()).toEqual([
        "Microsoft.Network/networkSecurityGroups",
        "Microsoft.Network/virtualNetworks",
      ]);

      expect((await call(c.app, "DELETE", "/v1/vms/td1", { token: c.adminToken })).statusCode).toBe(204);
      const operator = await call(c.app, "POST", "/v1/tokens", {
        token: c.adminToken,
        body: { name: "op", role: "operator" },
      });
      const forbidden = await call(c.app, "POST", "/v1/fleet/teardown", { token: operator.json().token });
      expect(forbidden.statusCode).toBe(403);
      const torn = await call(c.app, "POST", "/v1/fleet/teardown", { token: c.adminToken });
      expect(torn.statusCode).toBe(200);
      expect(torn.json()).toEqual({
        provider: "azure",
        deleted: ["teardown-vnet", "teardown-nsg", "teardown"],
        resourceGroupDeleted: true,
        keptBecause: null,
      });
      expect(inventory().resourceGroups.map((g) => g.name)).not.toContain("teardown");

      // The provider forgot its network: the next machine makes group, VNet and NSG again.
      expect((await createVm(c, "td2")).body.vm.state).toBe("running");
      expect(shared()).toEqual([
        "Microsoft.Network/networkSecurityGroups",
        "Microsoft.Network/virtualNetworks",
      ]);
    });
  });

  it("rides out a 429 storm: every machine is created and the retries are counted", async () => {
    const provider = emulatorProvider(emu, { resourceGroup: "storm" });
    await withController(provider, async (c) => {
      await provider.reconcile([]);
      emu.emulator.resetStats();
      emu.emulator.addFault({ method: "write", status: 429, probability: 0.3, retryAfterMs: 30 });
      const created = await Promise.all(["s1", "s2", "s3"].map((name) => createVm(c, name)));
      expect(created.map((r) => r.body.vm?.state ?? JSON.stringify(r.body))).toEqual([
        "running",
        "running",
        "running",
      ]);
      const stats = emu.emulator.getStats();
      expect(stats.throttled).toBeGreaterThan(0);
      expect(provider.counters.throttled).toBe(stats.throttled);
      for (const name of ["s1", "s2", "s3"]) expect(namesOf(name)).toHaveLength(4);
    });
  });

  it("a 500 on NIC creation leaves the VM failed with Azure's answer and no orphaned IP", async () => {
    const provider = emulatorProvider(emu, {
      resourceGroup: "nic500",
      retry: { maxRetries: 2, retryDelayInMs: 10 },
    });
    await withController(provider, async (c) => {
      emu.emulator.addFault({
        resourceType: "Microsoft.Network/networkInterfaces",
        method: "PUT",
        status: 500,
        code: "InternalServerError",
        message: "An error occurred while creating the network interface.",
      });
      const created = await createVm(c, "broken");
      expect(created.status).toBe(502);
      expect(created.body.error?.code).toBe("NBF_PROVIDER_FAILED");
      const vm = (await call(c.app, "GET", "/v1/vms/broken", { token: c.adminToken })).json() as VmView;
      expect(vm.state).toBe("failed");
      expect(vm.error).toMatch(
        /InternalServerError: An error occurred while creating the network interface\. \(HTTP 500\)/,
      );
      expect(vm.error).toMatch(/what it had made was deleted/);
      expect(namesOf("broken")).toEqual([]);
      expect(provider.counters.serverErrors).toBe(3);
    });
  });

  it("a failed VM operation leaves the VM failed with Azure's code and message, and its resources deleted", async () => {
    const provider = emulatorProvider(emu, { resourceGroup: "failop" });
    await withController(provider, async (c) => {
      emu.emulator.addFault(ALLOCATION_FAILED);
      await createVm(c, "nocap");
      const vm = (await call(c.app, "GET", "/v1/vms/nocap", { token: c.adminToken })).json() as VmView;
      expect(vm.state).toBe("failed");
      expect(vm.error).toContain(
        "create: AllocationFailed: Allocation failed. We do not have sufficient capacity",
      );
      expect(namesOf("nocap")).toEqual([]);
      // Deleting the failed VM asks Azure again and succeeds with nothing left.
      expect((await call(c.app, "DELETE", "/v1/vms/nocap", { token: c.adminToken })).statusCode).toBe(204);
    });
  });

  it("a hung poll fails the VM with a timeout error at the operation deadline and frees its slot", async () => {
    const provider = emulatorProvider(emu, {
      resourceGroup: "hung",
      maxConcurrency: 1,
      operationTimeoutMs: 4000,
      pollIntervalMs: 50,
    });
    await withController(provider, async (c) => {
      await provider.ensureFleet();
      // The first poll of the VM's create never gets an answer.
      emu.emulator.addFault({
        polls: true,
        resourceType: "Microsoft.Compute/virtualMachines",
        hang: true,
        count: 1,
      });
      const hung = createVm(c, "stuck");
      await eventually(
        async () => provider.inFlight.active,
        (active) => active === 1,
        10_000,
        5,
      );
      const started = Date.now();
      // Waits for the only slot, which the hung create holds until its deadline.
      const after = createVm(c, "after");
      await eventually(
        async () => provider.inFlight.pending,
        (pending) => pending === 1,
        10_000,
        5,
      );
      const failed = await hung;
      const elapsed = Date.now() - started;
      expect(failed.status).toBe(502);
      expect(failed.body.error?.code).toBe("NBF_PROVIDER_FAILED");
      expect(elapsed).toBeGreaterThanOrEqual(3900);
      expect(elapsed).toBeLessThan(12_000);
      const vm = (await call(c.app, "GET", "/v1/vms/stuck", { token: c.adminToken })).json() as VmView;
      expect(vm.state).toBe("failed");
      expect(vm.error).toContain(
        "create: Azure did not finish the create within 4 s (NBFLEET_AZURE_OPERATION_TIMEOUT_SEC); it was abandoned",
      );
      expect(vm.error).toContain("what it had made was deleted");
      expect(namesOf("stuck")).toEqual([]);
      expect(emu.emulator.getStats().faultsFired).toBeGreaterThanOrEqual(1);
      // The slot is free again: the next machine is made.
      expect((await after).body.vm.state).toBe("running");
      expect(provider.inFlight).toEqual({ active: 0, pending: 0 });
    });
  });

  it("retries an HTTP attempt that gets no answer within the request timeout", async () => {
    const provider = emulatorProvider(emu, { resourceGroup: "slowreq", requestTimeoutMs: 400 });
    await withController(provider, async (c) => {
      await provider.ensureFleet();
      emu.emulator.addFault({
        method: "PUT",
        resourceType: "Microsoft.Network/networkInterfaces",
        hang: true,
        count: 1,
      });
      const before = provider.counters.attempts;
      const started = Date.now();
      const created = await createVm(c, "patient");
      expect(created.body.error).toBeUndefined();
      expect(created.body.vm.state).toBe("running");
      expect(Date.now() - started).toBeGreaterThanOrEqual(400);
      expect(emu.emulator.faults.list()[0]?.fired).toBe(1);
      // IP (PUT + poll), NIC (hung PUT, its retry, poll), VM (PUT + poll) at least.
      expect(provider.counters.attempts - before).toBeGreaterThanOrEqual(7);
    });
  });

  it("says clearly when Azure refuses the credential, and what was used", async () => {
    const provider = emulatorProvider(emu, {
      resourceGroup: "badcred",
      credential: { credential: staticTokenCredential("wrong-token"), description: "a static test token" },
    });
    await withController(provider, async (c) => {
      await createVm(c, "nb1");
      const vm = (await call(c.app, "GET", "/v1/vms/nb1", { token: c.adminToken })).json() as VmView;
      expect(vm.state).toBe("failed");
      expect(vm.error).toMatch(
        /Azure refused the credential \((InvalidAuthenticationToken|invalid_token): The access token is invalid\.\); the controller used a static test token\. It needs a role such as Contributor on subscription/,
      );
    });
  });

  it("names every credential DefaultAzureCredential tried when none works", async () => {
    const saved = Object.fromEntries(
      Object.entries(process.env).filter(([key]) => /^(AZURE_|IDENTITY_|MSI_)/.test(key)),
    );
    for (const key of Object.keys(saved)) delete process.env[key];
    try {
      const provider = emulatorProvider(emu, {
        resourceGroup: "nocred",
        credential: chooseCredential({ endpoint: null }),
      });
      const error = await provider.reconcile([]).then(
        () => null,
        (e: Error) => e,
      );
      expect(error?.message).toMatch(
        /^no Azure credential could be obtained; the controller used DefaultAzureCredential/,
      );
      expect(error?.message).toMatch(/EnvironmentCredential is unavailable/);
      expect(error?.message).toMatch(/ManagedIdentityCredential/);
      expect(error?.message).toMatch(/Azure CLI/);
      expect(error?.message).toMatch(/az login/);
    } finally {
      Object.assign(process.env, saved);
    }
  });

  it("refuses a name Azure would refuse before any call", async () => {
    const provider = emulatorProvider(emu, { resourceGroup: "names" });
    emu.emulator.resetStats();
    const context = {
      bootstrapToken: "nbfb_x".padEnd(20, "x"),
      controllerUrl: "http://127.0.0.1:1",
      passwordHash: "sha1:0:0",
    };
    await expect(
      provider.create({ name: "a".repeat(57), labels: {}, providerData: null }, context),
    ).rejects.toThrow(/Azure would refuse the name "a{57}": .*at most 56 characters/);
    const windows = emulatorProvider(emu, { resourceGroup: "names", image: "windows-2022" });
    await expect(
      windows.create({ name: "notebook-server-01", labels: {}, providerData: null }, context),
    ).rejects.toThrow(/Windows computer name is at most 15 characters/);
    expect(emu.emulator.getStats().requests).toBe(0);
  });

  it("boots Linux with cloud-init (systemd, 443 → 9999, admin user, FQDN) and Windows with a CustomScriptExtension", async () => {
    const provider = emulatorProvider(emu, {
      resourceGroup: "guests",
      controllerTrust: {
        fingerprint: "AB".repeat(32),
        certPem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
      },
    });
    const windows = emulatorProvider(emu, { resourceGroup: "guests", image: "windows-2022" });
    const context = {
      bootstrapToken: "nbfb_guest-token-0123",
      controllerUrl: "https://controller.example",
      // Replicas: the agent dials them in turn; the artifact still comes from controllerUrl.
      controllerUrls: ["https://controller.example", "https://replica-2.example:7443"],
      passwordHash: "sha1:0123456789ab:0123456789abcdef0123456789abcdef01234567",
    };
    const linux = await provider.create({ name: "lin1", labels: {}, providerData: null }, context);
    await windows.create({ name: "win1", labels: {}, providerData: null }, context);
    const customData = (name: string) => {
      const vm = emu.emulator.store
        .list({ type: "Microsoft.Compute/virtualMachines" })
        .find((r) => r.name === name)!;
      return Buffer.from(vm.hidden.customData as string, "base64").toString("utf8");
    };
    const cloudInit = customData("lin1");
    expect(cloudInit.startsWith("#cloud-config\n")).toBe(true);
    const fqdn = new URL(linux.notebookUrl!).hostname;
    for (const line of [
      "NBF_MODE='systemd'",
      "NBF_CONTROLLER_URL='https://controller.example'",
      "NBF_ARTIFACT_URL='https://controller.example/v1/agent/artifact'",
      "NBF_BOOTSTRAP_TOKEN='nbfb_guest-token-0123'",
      "NBF_NOTEBOOK_PORT='9999'",
      "NBF_PUBLIC_PORT='443'",
      "NBF_RUN_AS='nbfleet'",
      `NBF_CONTROLLER_FINGERPRINT='${"AB".repeat(32)}'`,
    ]) {
      expect(cloudInit).toContain(line);
    }
    expect(cloudInit).toContain(`--hostname ${fqdn}`);
    expect(cloudInit).toContain(
      "--controller https://controller.example --controller https://replica-2.example:7443",
    );
    // The agent reports the public URL (443 through the redirect), not its private port 9999.
    expect(linux.notebookUrl).toMatch(/^https:\/\/lin1-[0-9a-f]{6}\.westeurope\.cloudapp\.azure\.com\/$/);
    expect(cloudInit).toContain(`--public-url ${linux.notebookUrl}`);
    // The redirect serves connections from outside and from the machine itself.
    expect(cloudInit).toMatch(
      /chain prerouting \{\s*type nat hook prerouting[^}]*tcp dport 443 redirect to :9999/,
    );
    expect(cloudInit).toMatch(
      /chain output \{\s*type nat hook output[^}]*fib daddr type local tcp dport 443 redirect to :9999/,
    );
    const powershell = customData("win1");
    expect(powershell).toContain("$NbfControllerUrl = 'https://controller.example'");
    expect(powershell).toContain(
      "$NbfControllerUrls = 'https://controller.example, https://replica-2.example:7443'",
    );
    expect(powershell).toContain("$NbfPublicPort = 443");
    // The launcher's one agent command line (each argument quoted for Windows where it needs it).
    expect(powershell).toMatch(/--public-url https:\/\/win1-[0-9a-f]+\.westeurope\.cloudapp\.azure\.com\//);
    const extension = emu.emulator.store.list({ type: "Microsoft.Compute/virtualMachines/extensions" })[0]!;
    expect(extension.name).toBe("nbfleet-bootstrap");
    expect(extension.properties).toMatchObject({
      publisher: "Microsoft.Compute",
      type: "CustomScriptExtension",
    });
    expect(JSON.stringify(extension.hidden.protectedSettings)).toContain("C:\\\\AzureData\\\\CustomData.bin");
    const vm = emu.emulator.store
      .list({ type: "Microsoft.Compute/virtualMachines" })
      .find((r) => r.name === "win1")!;
    expect(vm.properties.storageProfile).toMatchObject({
      imageReference: { publisher: "MicrosoftWindowsServer" },
    });
  });

  it("keeps at most maxConcurrency machines in flight", async () => {
    const provider = emulatorProvider(emu, { resourceGroup: "bounded", maxConcurrency: 2 });
    await withController(provider, async (c) => {
      let most = 0;
      const sampler = setInterval(() => {
        most = Math.max(most, provider.inFlight.active);
      }, 10);
      try {
        const created = await Promise.all(["b1", "b2", "b3", "b4", "b5"].map((name) => createVm(c, name)));
        expect(created.every((r) => r.body.vm.state === "running")).toBe(true);
      } finally {
        clearInterval(sampler);
      }
      expect(most).toBe(2);
    });
  });

  it("reconciles: a VM deleted outside nbfleet is missing, fleet-tagged leftovers are orphans", async () => {
    const provider = emulatorProvider(emu, { resourceGroup: "recon" });
    await withController(provider, async (c) => {
      await createVm(c, "keep");
      await createVm(c, "gone");
      await createVm(c, "stray");
      const record = async (name: string) => (await c.app.nbfleet.store.vms.require(name)).providerData;
      const known = [
        { name: "keep", labels: {}, providerData: await record("keep") },
        { name: "gone", labels: {}, providerData: await record("gone") },
      ];
      // Outside nbfleet: someone deletes "gone" in the portal; "stray" is forgotten by nbfleet.
      const { compute } = (provider as unknown as { clients: import("./clients.js").AzureClients }).clients;
      await compute.virtualMachines.beginDeleteAndWait("recon", "gone");
      await compute.virtualMachines.beginDeallocateAndWait("recon", "keep");
      const report = await provider.reconcile(known);
      expect(report.missing).toEqual(["gone"]);
      expect(report.states).toEqual({ keep: "stopped" });
      expect(report.orphans.map((o) => `${o.type.split("/").pop()}/${o.name}`).sort()).toEqual([
        "networkInterfaces/stray-nic",
        "publicIPAddresses/stray-ip",
        "virtualMachines/stray",
      ]);
    });
  });
});
