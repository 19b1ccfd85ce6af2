import { mkdtemp, rm } from "node:fs/promises";
/**
 * The emulator driven by the real Azure SDK clients (@azure/arm-resources, -network, -compute)
 * over HTTPS with the emulator's CA: Resource Manager semantics, references, errors, faults,
 * throttling and the admin routes. Guests are off here (guest/ and test/e2e cover booting).
 */
import https from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ComputeManagementClient, type VirtualMachine } from "@azure/arm-compute";
import { NetworkManagementClient } from "@azure/arm-network";
import { ResourceManagementClient } from "@azure/arm-resources";
import type { TokenCredential } from "@azure/core-auth";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ALLOCATION_FAILED } from "./arm/faults.js";
import { type RunningEmulator, startEmulator } from "./server.js";

const SUB = "11111111-2222-3333-4444-555555555555";
const RG = "nbf-test";
const LOC = "westeurope";
const TOKEN = "emulator-test-token";

let dir: string;
let emu: RunningEmulator;
let rmc: ResourceManagementClient;
let net: NetworkManagementClient;
let cmp: ComputeManagementClient;

const credential = (token: string): TokenCredential => ({
  getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3_600_000 }),
});

function clients(token = TOKEN, maxRetries = 3) {
  const options = {
    endpoint: emu.endpoint,
    tlsOptions: { ca: emu.caPem },
    retryOptions: { maxRetries, retryDelayInMs: 50 },
  };
  return {
    rmc: new ResourceManagementClient(credential(token), SUB, options),
    net: new NetworkManagementClient(credential(token), SUB, options),
    cmp: new ComputeManagementClient(credential(token), SUB, options),
  };
}

/** A raw HTTPS request (to see statuses and headers the SDK hides), trusting the emulator's CA. */
function raw(
  method: string,
  urlPath: string,
  body?: unknown,
  token: string | null = TOKEN,
  // biome-ignore lint/suspicious/noExplicitAny: tests read whatever JSON came back
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: any }> {
  return new Promise((resolve, reject) => {
    const url = new URL(urlPath, emu.endpoint);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = https.request(
      url,
      {
        method,
        ca: emu.caPem,
        headers: {
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(payload ? { "content-type": "application/json" } : {}),
        },
      },
      (res) => {
        let text = "";
        res.on("data", (chunk) => {
          text += chunk;
        });
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: text ? JSON.parse(text) : undefined,
          }),
        );
      },
    );
    req.on("error", reject);
    req.end(payload);
  });
}

const groupPath = `/subscriptions/${SUB}/resourceGroups/${RG}`;
const api = (p: string, version = "2024-05-01") => `${p}?api-version=${version}`;

async function network(prefix: string) {
  const nsg = await net.networkSecurityGroups.beginCreateOrUpdateAndWait(RG, `${prefix}-nsg`, {
    location: LOC,
    securityRules: [
      {
        name: "notebook",
        protocol: "Tcp",
        access: "Allow",
        direction: "Inbound",
        priority: 100,
        sourceAddressPrefix: "*",
        sourcePortRange: "*",
        destinationAddressPrefix: "*",
        destinationPortRange: "443",
      },
    ],
  });
  const vnet = await net.virtualNetworks.beginCreateOrUpdateAndWait(RG, `${prefix}-vnet`, {
    location: LOC,
    addressSpace: { addressPrefixes: ["10.1.0.0/16"] },
    subnets: [{ name: "default", addressPrefix: "10.1.0.0/24", networkSecurityGroup: { id: nsg.id! } }],
  });
  return { nsg, vnet, subnetId: vnet.subnets![0]!.id! };
}

async function vmWithNic(name: string, subnetId: string, extra: Partial<VirtualMachine> = {}) {
  const ip = await net.publicIPAddresses.beginCreateOrUpdateAndWait(RG, `${name}-ip`, {
    location: LOC,
    sku: { name: "Standard" },
    publicIPAllocationMethod: "Static",
    dnsSettings: { domainNameLabel: `${name}-label` },
    deleteOption: "Delete",
  });
  const nic = await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, `${name}-nic`, {
    location: LOC,
    ipConfigurations: [{ name: "ipconfig1", subnet: { id: subnetId }, publicIPAddress: { id: ip.id! } }],
  });
  const vm = await cmp.virtualMachines.beginCreateOrUpdateAndWait(RG, name, vmBody(nic.id!, name, extra));
  return { ip, nic, vm };
}

function vmBody(nicId: string, name: string, extra: Partial<VirtualMachine> = {}): VirtualMachine {
  return {
    location: LOC,
    hardwareProfile: { vmSize: "Standard_B2s" },
    storageProfile: {
      imageReference: { publisher: "Canonical", offer: "ubuntu-24_04-lts", sku: "server", version: "latest" },
      osDisk: { createOption: "FromImage", name: `${name}-osdisk`, deleteOption: "Delete" },
    },
    osProfile: {
      computerName: name,
      adminUsername: "nbfleet",
      linuxConfiguration: {
        disablePasswordAuthentication: true,
        ssh: {
          publicKeys: [
            {
              path: "/home/nbfleet/.ssh/authorized_keys",
              keyData: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA test",
            },
          ],
        },
      },
    },
    networkProfile: { networkInterfaces: [{ id: nicId, primary: true, deleteOption: "Delete" }] },
    ...extra,
  };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-azure-emulator-"));
  emu = await startEmulator({
    dataDir: dir,
    guests: "none",
    token: TOKEN,
    durations: { network: 20, compute: 50, power: 20, delete: 20 },
  });
  ({ rmc, net, cmp } = clients());
  await rmc.resourceGroups.createOrUpdate(RG, { location: LOC, tags: { "nbfleet-fleet": "test" } });
});

afterAll(async () => {
  await emu?.close();
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  emu.emulator.faults.clear();
});

describe("Resource Manager semantics through the real SDK", () => {
  it("answers PUT 201 then 200 with Azure-AsyncOperation and Retry-After, provisioningState reaching Succeeded", async () => {
    const body = { location: LOC, properties: { securityRules: [] } };
    const url = api(`${groupPath}/providers/Microsoft.Network/networkSecurityGroups/raw-nsg`);
    const first = await raw("PUT", url, body);
    expect(first.status).toBe(201);
    expect(first.headers["azure-asyncoperation"]).toMatch(
      /^https:\/\/127\.0\.0\.1:\d+\/subscriptions\/.+\/operations\//,
    );
    expect(Number(first.headers["retry-after"])).toBeGreaterThanOrEqual(1);
    expect(first.headers["x-ms-ratelimit-remaining-subscription-writes"]).toMatch(/^\d+$/);
    expect(first.body.properties.provisioningState).toBe("Updating");
    const asyncUrl = new URL(first.headers["azure-asyncoperation"] as string);
    await sleep(100);
    const status = await raw("GET", `${asyncUrl.pathname}${asyncUrl.search}`);
    expect(status.body.status).toBe("Succeeded");
    expect((await raw("GET", url)).body.properties.provisioningState).toBe("Succeeded");
    expect((await raw("PUT", url, body)).status).toBe(200);
  });

  it("creates a whole VM through the SDK, shows its power state, and runs start/deallocate/restart", async () => {
    const { subnetId } = await network("life");
    const { ip, nic, vm } = await vmWithNic("life-vm", subnetId);
    expect(ip.ipAddress).toMatch(/^203\.0\.113\.\d+$/);
    expect(ip.dnsSettings?.fqdn).toBe(`life-vm-label.${LOC}.cloudapp.azure.com`);
    expect(nic.ipConfigurations?.[0]?.privateIPAddress).toMatch(/^10\.1\.0\.\d+$/);
    expect(vm.provisioningState).toBe("Succeeded");
    expect(vm.osProfile?.customData).toBeUndefined();
    const power = async () =>
      (await cmp.virtualMachines.instanceView(RG, "life-vm")).statuses
        ?.map((s) => s.code)
        .filter((c) => c?.startsWith("PowerState/"));
    expect(await power()).toEqual(["PowerState/running"]);
    expect((await net.networkInterfaces.get(RG, "life-vm-nic")).virtualMachine?.id).toBe(vm.id);
    await cmp.virtualMachines.beginDeallocateAndWait(RG, "life-vm");
    expect(await power()).toEqual(["PowerState/deallocated"]);
    await expect(cmp.virtualMachines.beginRestartAndWait(RG, "life-vm")).rejects.toMatchObject({
      statusCode: 409,
      code: "OperationNotAllowed",
    });
    await cmp.virtualMachines.beginStartAndWait(RG, "life-vm");
    await cmp.virtualMachines.beginRestartAndWait(RG, "life-vm");
    const expanded = await cmp.virtualMachines.get(RG, "life-vm", { expand: "instanceView" });
    expect(expanded.instanceView?.statuses?.map((s) => s.code)).toContain("PowerState/running");

    // In use: the NIC belongs to the VM, the IP to the NIC.
    await expect(net.networkInterfaces.beginDeleteAndWait(RG, "life-vm-nic")).rejects.toMatchObject({
      code: "NicInUse",
    });
    await expect(net.publicIPAddresses.beginDeleteAndWait(RG, "life-vm-ip")).rejects.toMatchObject({
      code: "PublicIPAddressCannotBeDeleted",
    });
    // Deleting the VM takes the OS disk, NIC and IP with it (deleteOption Delete).
    await cmp.virtualMachines.beginDeleteAndWait(RG, "life-vm");
    const names = emu.emulator.inventory().resources.map((r) => r.name);
    expect(names.filter((n) => n.startsWith("life-vm"))).toEqual([]);
  });

  it("answers DELETE 202 with Location and Azure-AsyncOperation, and 204 when the resource is gone", async () => {
    await net.networkSecurityGroups.beginCreateOrUpdateAndWait(RG, "gone-nsg", { location: LOC });
    const url = api(`${groupPath}/providers/Microsoft.Network/networkSecurityGroups/gone-nsg`);
    const accepted = await raw("DELETE", url);
    expect(accepted.status).toBe(202);
    expect(accepted.headers.location).toMatch(/\/operationResults\//);
    expect(accepted.headers["azure-asyncoperation"]).toMatch(/\/operations\//);
    await sleep(100);
    const location = new URL(accepted.headers.location as string);
    expect((await raw("GET", `${location.pathname}${location.search}`)).status).toBe(204);
    expect((await raw("DELETE", url)).status).toBe(204);
    const missing = await raw("GET", url);
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({
      error: { code: "ResourceNotFound", message: expect.stringContaining("gone-nsg") },
    });
  });

  it("checks references: a NIC needs its subnet, a VM its NIC, a public IP serves one NIC", async () => {
    const { subnetId } = await network("refs");
    const missingSubnet = `${subnetId.replace(/subnets\/default$/, "subnets/nope")}`;
    await expect(
      net.networkInterfaces.beginCreateOrUpdateAndWait(RG, "refs-nic", {
        location: LOC,
        ipConfigurations: [{ name: "c", subnet: { id: missingSubnet } }],
      }),
    ).rejects.toMatchObject({
      statusCode: 400,
      code: "InvalidResourceReference",
      message: expect.stringContaining("subnets/nope"),
    });
    const nicId = `${groupPath}/providers/Microsoft.Network/networkInterfaces/no-such-nic`;
    await expect(
      cmp.virtualMachines.beginCreateOrUpdateAndWait(RG, "refs-vm", vmBody(nicId, "refs-vm")),
    ).rejects.toMatchObject({
      statusCode: 400,
      code: "InvalidResourceReference",
    });
    const ip = await net.publicIPAddresses.beginCreateOrUpdateAndWait(RG, "refs-ip", {
      location: LOC,
      sku: { name: "Standard" },
      publicIPAllocationMethod: "Static",
    });
    const nicBody = (ipId: string) => ({
      location: LOC,
      ipConfigurations: [{ name: "c", subnet: { id: subnetId }, publicIPAddress: { id: ipId } }],
    });
    await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, "refs-nic-a", nicBody(ip.id!));
    await expect(
      net.networkInterfaces.beginCreateOrUpdateAndWait(RG, "refs-nic-b", nicBody(ip.id!)),
    ).rejects.toMatchObject({
      code: "PublicIPAddressInUse",
    });
    // A subnet in use keeps its VNet.
    await expect(net.virtualNetworks.beginDeleteAndWait(RG, "refs-vnet")).rejects.toMatchObject({
      code: "InUseSubnetCannotBeDeleted",
    });
  });

  it("refuses what Azure refuses: a taken DNS label (Conflict), Standard with Dynamic, bad names, a big customData", async () => {
    const ipBody = {
      location: LOC,
      sku: { name: "Standard" },
      publicIPAllocationMethod: "Static",
      dnsSettings: { domainNameLabel: "taken-label" },
    };
    await net.publicIPAddresses.beginCreateOrUpdateAndWait(RG, "dns-a", ipBody);
    await expect(net.publicIPAddresses.beginCreateOrUpdateAndWait(RG, "dns-b", ipBody)).rejects.toMatchObject(
      {
        statusCode: 409,
        code: "Conflict",
      },
    );
    await expect(
      net.publicIPAddresses.beginCreateOrUpdateAndWait(RG, "dyn", {
        location: LOC,
        sku: { name: "Standard" },
        publicIPAllocationMethod: "Dynamic",
      }),
    ).rejects.toMatchObject({ code: "InvalidParameter" });
    await expect(
      net.networkSecurityGroups.beginCreateOrUpdateAndWait(RG, "bad name!", { location: LOC }),
    ).rejects.toMatchObject({
      code: "InvalidResourceName",
    });
    const { subnetId } = await network("big");
    const ip = await net.publicIPAddresses.beginCreateOrUpdateAndWait(RG, "big-ip", { location: LOC });
    const nic = await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, "big-nic", {
      location: LOC,
      ipConfigurations: [{ name: "c", subnet: { id: subnetId }, publicIPAddress: { id: ip.id! } }],
    });
    const body = vmBody(nic.id!, "big-vm");
    body.osProfile!.customData = Buffer.alloc(65536, 1).toString("base64");
    await expect(cmp.virtualMachines.beginCreateOrUpdateAndWait(RG, "big-vm", body)).rejects.toMatchObject({
      statusCode: 400,
      code: "InvalidParameter",
      message: expect.stringContaining("87380"),
    });
    body.osProfile!.customData = Buffer.alloc(65535, 1).toString("base64");
    const vm = await cmp.virtualMachines.beginCreateOrUpdateAndWait(RG, "big-vm", body);
    expect(vm.provisioningState).toBe("Succeeded");
    await cmp.virtualMachines.beginDeleteAndWait(RG, "big-vm");
  });

  it("keeps VM extensions under their VM and deletes them with it", async () => {
    const { subnetId } = await network("ext");
    await vmWithNic("ext-vm", subnetId);
    const ext = await cmp.virtualMachineExtensions.beginCreateOrUpdateAndWait(
      RG,
      "ext-vm",
      "nbfleet-bootstrap",
      {
        location: LOC,
        publisher: "Microsoft.Compute",
        typePropertiesType: "CustomScriptExtension",
        typeHandlerVersion: "1.10",
        protectedSettings: { commandToExecute: "secret" },
      },
    );
    expect(ext.provisioningState).toBe("Succeeded");
    expect(ext.protectedSettings).toBeUndefined();
    expect((await cmp.virtualMachineExtensions.list(RG, "ext-vm")).value?.map((e) => e.name)).toEqual([
      "nbfleet-bootstrap",
    ]);
    await cmp.virtualMachines.beginDeleteAndWait(RG, "ext-vm");
    expect(emu.emulator.inventory().resources.filter((r) => r.id.includes("ext-vm"))).toEqual([]);
  });

  it("lists a resource group's resources by tag", async () => {
    await net.networkSecurityGroups.beginCreateOrUpdateAndWait(RG, "tagged-nsg", {
      location: LOC,
      tags: { "nbfleet-vm": "t1" },
    });
    const names: string[] = [];
    for await (const r of rmc.resources.listByResourceGroup(RG, {
      filter: "tagName eq 'nbfleet-vm' and tagValue eq 't1'",
    })) {
      names.push(r.name!);
    }
    expect(names).toEqual(["tagged-nsg"]);
  });
});

describe("credentials", () => {
  it("refuses a missing or wrong bearer token with Azure's codes", async () => {
    const none = await raw("GET", api(groupPath, "2021-04-01"), undefined, null);
    expect(none.status).toBe(401);
    expect(none.body.error.code).toBe("AuthenticationFailed");
    const wrong = clients("not-the-token");
    await expect(wrong.rmc.resourceGroups.get(RG)).rejects.toMatchObject({
      statusCode: 401,
      code: "InvalidAuthenticationToken",
    });
  });
});

describe("injected faults and throttling", () => {
  it("429 with Retry-After: the SDK waits and retries, and the emulator counts the throttled writes", async () => {
    emu.emulator.resetStats();
    emu.emulator.addFault({
      resourceType: "Microsoft.Network/networkSecurityGroups",
      status: 429,
      count: 2,
      retryAfterMs: 50,
    });
    const nsg = await net.networkSecurityGroups.beginCreateOrUpdateAndWait(RG, "throttled-nsg", {
      location: LOC,
    });
    expect(nsg.provisioningState).toBe("Succeeded");
    const stats = emu.emulator.getStats();
    expect(stats.throttled).toBe(2);
    expect(stats.writesByType["Microsoft.Network/networkSecurityGroups PUT"]).toBe(3);
    const answer = await (async () => {
      emu.emulator.addFault({ status: 429, count: 1, retryAfterMs: 2500 });
      return raw("PUT", api(`${groupPath}/providers/Microsoft.Network/networkSecurityGroups/x`), {
        location: LOC,
      });
    })();
    expect(answer.status).toBe(429);
    expect(answer.headers["retry-after"]).toBe("3");
    expect(answer.headers["x-ms-retry-after-ms"]).toBe("2500");
  });

  it("hang: a matching request gets no answer; the client's abort deadline ends it", async () => {
    emu.emulator.addFault({
      method: "PUT",
      resourceType: "Microsoft.Network/networkSecurityGroups",
      hang: true,
    });
    const started = Date.now();
    await expect(
      net.networkSecurityGroups.beginCreateOrUpdateAndWait(
        RG,
        "hung-nsg",
        { location: LOC },
        { abortSignal: AbortSignal.timeout(300) },
      ),
    ).rejects.toMatchObject({ name: "AbortError" });
    expect(Date.now() - started).toBeLessThan(3000);
    expect(emu.emulator.inventory().resources.some((r) => r.name === "hung-nsg")).toBe(false);
  });

  it("hang on polls: the write is accepted, then its operation's polls get no answer", async () => {
    emu.emulator.resetStats();
    emu.emulator.addFault({
      polls: true,
      resourceType: "Microsoft.Network/networkSecurityGroups",
      hang: true,
      count: 1,
    });
    await expect(
      net.networkSecurityGroups.beginCreateOrUpdateAndWait(
        RG,
        "poll-hung-nsg",
        { location: LOC },
        { abortSignal: AbortSignal.timeout(500), updateIntervalInMs: 10 },
      ),
    ).rejects.toMatchObject({ name: "AbortError" });
    expect(emu.emulator.getStats().faultsFired).toBe(1);
    // The PUT itself went through; with the rule spent, the next caller polls to the end.
    expect(emu.emulator.inventory().resources.some((r) => r.name === "poll-hung-nsg")).toBe(true);
    const again = await net.networkSecurityGroups.beginCreateOrUpdateAndWait(RG, "poll-hung-nsg", {
      location: LOC,
    });
    expect(again.provisioningState).toBe("Succeeded");
    // A poll rule does not touch requests to the resource, and a request rule no polls.
    expect(() => emu.emulator.addFault({ polls: true, delayMs: 5 })).toThrow(/polls can only answer/);
  });

  it("a 500 on NIC creation reaches the caller once the SDK's retries are spent", async () => {
    const { subnetId } = await network("err");
    emu.emulator.addFault({
      resourceType: "Microsoft.Network/networkInterfaces",
      status: 500,
      message: "boom",
    });
    const once = clients(TOKEN, 1);
    await expect(
      once.net.networkInterfaces.beginCreateOrUpdateAndWait(RG, "err-nic", {
        location: LOC,
        ipConfigurations: [{ name: "c", subnet: { id: subnetId } }],
      }),
    ).rejects.toMatchObject({ statusCode: 500, code: "InternalServerError", message: "boom" });
    expect(
      emu.emulator.store.list({ type: "Microsoft.Network/networkInterfaces" }).map((r) => r.name),
    ).not.toContain("err-nic");
  });

  it("a failed long-running operation leaves the VM Failed with Azure's code and message", async () => {
    const { subnetId } = await network("failop");
    emu.emulator.addFault(ALLOCATION_FAILED);
    await expect(vmWithNic("failop-vm", subnetId)).rejects.toThrow(/AllocationFailed\. Allocation failed/);
    const vm = await cmp.virtualMachines.get(RG, "failop-vm");
    expect(vm.provisioningState).toBe("Failed");
    // What a half-created VM leaves behind: the VM, its OS disk, NIC and IP — until deleted.
    expect(emu.emulator.inventory().resources.filter((r) => r.name.startsWith("failop-vm")).length).toBe(4);
    await cmp.virtualMachines.beginDeleteAndWait(RG, "failop-vm");
    expect(emu.emulator.inventory().resources.filter((r) => r.name.startsWith("failop-vm"))).toEqual([]);
  });

  it("slows a long-running operation down by delayMs", async () => {
    emu.emulator.addFault({ resourceType: "Microsoft.Network/networkSecurityGroups", delayMs: 1500 });
    const started = Date.now();
    await net.networkSecurityGroups.beginCreateOrUpdateAndWait(RG, "slow-nsg", { location: LOC });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
  });

  it("throttles a subscription whose write bucket is empty, and the SDK rides it out", async () => {
    const small = await startEmulator({
      dataDir: dir,
      guests: "none",
      limits: { writes: { capacity: 2, refillPerSec: 20 }, reads: { capacity: 1000, refillPerSec: 1000 } },
      durations: { network: 10, compute: 10, power: 10, delete: 10 },
    });
    try {
      const options = { endpoint: small.endpoint, tlsOptions: { ca: small.caPem } };
      const client = new ResourceManagementClient(credential("any"), SUB, options);
      await Promise.all(
        ["a", "b", "c", "d"].map((g) => client.resourceGroups.createOrUpdate(g, { location: LOC })),
      );
      const stats = small.emulator.getStats();
      expect(stats.throttled).toBeGreaterThan(0);
      expect(
        small.emulator
          .inventory()
          .resourceGroups.map((g) => g.name)
          .sort(),
      ).toEqual(["a", "b", "c", "d"]);
    } finally {
      await small.close();
    }
  });
});

describe("admin routes", () => {
  it("adds and lists faults over HTTP and serves the inventory", async () => {
    const added = await raw("POST", "/_emulator/faults", { status: 500, name: "nothing-matches-this" }, null);
    expect(added.status).toBe(201);
    const listed = await raw("GET", "/_emulator/faults", undefined, null);
    expect(listed.body.value.map((f: { id: string }) => f.id)).toEqual([added.body.id]);
    const bad = await raw("POST", "/_emulator/faults", { status: 500, delayMs: 3 }, null);
    expect(bad.status).toBe(400);
    expect((await raw("DELETE", `/_emulator/faults/${added.body.id}`, undefined, null)).status).toBe(204);
    const inventory = await raw("GET", "/_emulator/inventory", undefined, null);
    expect(inventory.body.resourceGroups.map((g: { name: string }) => g.name)).toContain(RG);
  });

  it("deletes a resource group with everything in it", async () => {
    await rmc.resourceGroups.createOrUpdate("doomed", { location: LOC });
    const nsg = await net.networkSecurityGroups.beginCreateOrUpdateAndWait("doomed", "n", { location: LOC });
    await net.virtualNetworks.beginCreateOrUpdateAndWait("doomed", "v", {
      location: LOC,
      addressSpace: { addressPrefixes: ["10.9.0.0/16"] },
      subnets: [{ name: "s", addressPrefix: "10.9.0.0/24", networkSecurityGroup: { id: nsg.id! } }],
    });
    await rmc.resourceGroups.beginDeleteAndWait("doomed");
    expect(await rmc.resourceGroups.checkExistence("doomed")).toMatchObject({ body: false });
    expect(emu.emulator.inventory().resources.filter((r) => r.resourceGroup === "doomed")).toEqual([]);
  });
});
