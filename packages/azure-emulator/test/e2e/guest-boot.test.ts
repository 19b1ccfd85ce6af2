/**
 * A VM booted by the emulator runs its customData for real: the cloud-init from @nbfleet/scripts
 * is read, its nbfleet bootstrap runs in sandbox mode, fetches the real agent artifact from the
 * (stand-in) controller, and the real agent serves Jupyter and dials the controller. Deallocate
 * stops the guest, start boots it again, delete removes it.
 */
import { createHash } from "node:crypto";
import { chmod, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ComputeManagementClient } from "@azure/arm-compute";
import { NetworkManagementClient } from "@azure/arm-network";
import { ResourceManagementClient } from "@azure/arm-resources";
import { buildAgentArtifact, customDataBase64, renderCloudInit } from "@nbfleet/scripts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningEmulator, startEmulator } from "../../src/index.js";

const SUB = "22222222-0000-0000-0000-000000000000";
const RG = "boot";
const LOC = "westeurope";
const SALT = "0123456789ab";

let root: string;
let emu: RunningEmulator;
let controller: http.Server;
let controllerUrl: string;
const dials: string[] = [];

function notebookAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = https.get(
      { host: "127.0.0.1", port, path: "/api", rejectUnauthorized: false, timeout: 2000 },
      (res) => {
        res.resume();
        resolve(res.statusCode === 200);
      },
    );
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms: number): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(250);
  }
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), "nbf-emulator-boot-"));
  // As root the notebook runs as the unprivileged `nbfleet` user, who must reach the guest dirs.
  await chmod(root, 0o755);
  const artifact = await buildAgentArtifact({ outDir: path.join(root, "artifact") });
  const bytes = await readFile(artifact.file);
  controller = http.createServer((req, res) => {
    if (req.url === "/v1/agent/artifact") res.writeHead(200).end(bytes);
    else res.writeHead(404).end();
  });
  controller.on("upgrade", (req, socket) => {
    dials.push(String(req.headers.authorization));
    socket.destroy();
  });
  await new Promise<void>((resolve) => controller.listen(0, "127.0.0.1", resolve));
  controllerUrl = `http://127.0.0.1:${(controller.address() as AddressInfo).port}`;
  emu = await startEmulator({
    dataDir: path.join(root, "emulator"),
    durations: { network: 20, compute: 50, power: 20, delete: 20 },
  });
  (globalThis as { artifactSha?: string }).artifactSha = artifact.sha256;
});

afterAll(async () => {
  await emu?.close();
  await new Promise((resolve) => controller?.close(resolve));
  await rm(root, { recursive: true, force: true });
});

describe("emulated VM boot → real bootstrap → real agent", () => {
  it("boots the customData's bootstrap, stops it on deallocate, boots again on start and cleans up on delete", async () => {
    const credential = { getToken: async () => ({ token: "t", expiresOnTimestamp: Date.now() + 3_600_000 }) };
    const options = { endpoint: emu.endpoint, tlsOptions: { ca: emu.caPem } };
    const rmc = new ResourceManagementClient(credential, SUB, options);
    const net = new NetworkManagementClient(credential, SUB, options);
    const cmp = new ComputeManagementClient(credential, SUB, options);
    await rmc.resourceGroups.createOrUpdate(RG, { location: LOC });
    const vnet = await net.virtualNetworks.beginCreateOrUpdateAndWait(RG, "vnet", {
      location: LOC,
      addressSpace: { addressPrefixes: ["10.0.0.0/16"] },
      subnets: [{ name: "default", addressPrefix: "10.0.0.0/24" }],
    });
    const nic = await net.networkInterfaces.beginCreateOrUpdateAndWait(RG, "vm1-nic", {
      location: LOC,
      ipConfigurations: [{ name: "c", subnet: { id: vnet.subnets![0]!.id! } }],
    });
    const userData = renderCloudInit({
      controllerUrl,
      artifactUrl: `${controllerUrl}/v1/agent/artifact`,
      artifactSha256: (globalThis as { artifactSha?: string }).artifactSha!,
      bootstrapToken: "nbfb_emulator-boot-token",
      // The agent serves no notebook without a password; this stand-in controller cannot send one.
      passwordHash: `sha1:${SALT}:${createHash("sha1").update(`emulator-password${SALT}`).digest("hex")}`,
      runAs: "azureuser",
    });
    await cmp.virtualMachines.beginCreateOrUpdateAndWait(RG, "vm1", {
      location: LOC,
      hardwareProfile: { vmSize: "Standard_B2s" },
      storageProfile: {
        imageReference: {
          publisher: "Canonical",
          offer: "ubuntu-24_04-lts",
          sku: "server",
          version: "latest",
        },
        osDisk: { createOption: "FromImage", deleteOption: "Delete" },
      },
      osProfile: {
        adminUsername: "azureuser",
        adminPassword: "Unused-Password-1",
        customData: customDataBase64(userData),
      },
      networkProfile: { networkInterfaces: [{ id: nic.id!, deleteOption: "Delete" }] },
    });

    const vmId = nic.id!.replace(
      /Microsoft\.Network\/networkInterfaces\/vm1-nic$/,
      "Microsoft.Compute/virtualMachines/vm1",
    );
    const guest = await until(
      "the guest to boot",
      async () => {
        const status = emu.emulator.inventory().resources.find((r) => r.id === vmId)?.guest;
        if (status?.state === "failed") throw new Error(status.detail);
        return status?.state === "running" ? status : undefined;
      },
      150_000,
    ).catch((error) => {
      throw new Error(
        `${error.message}; guest: ${JSON.stringify(emu.emulator.inventory().resources.find((r) => r.id === vmId))}`,
      );
    });
    const port = guest.notebookPort!;
    await until("the agent to dial the controller", async () => dials.length > 0, 60_000);
    await until("the notebook to answer", () => notebookAnswers(port), 120_000);
    expect(dials[0]).toBe("Bearer nbfb_emulator-boot-token");
    expect(await readFile(path.join(guest.dir!, "bootstrap.sh"), "utf8")).toContain("NBF_MODE='sandbox'");

    await cmp.virtualMachines.beginDeallocateAndWait(RG, "vm1");
    expect(await notebookAnswers(port)).toBe(false);
    await cmp.virtualMachines.beginStartAndWait(RG, "vm1");
    await until("the notebook to answer after start", () => notebookAnswers(port), 120_000);

    await cmp.virtualMachines.beginDeleteAndWait(RG, "vm1");
    expect(await notebookAnswers(port)).toBe(false);
    await expect(stat(guest.dir!)).rejects.toThrow(/ENOENT/);
    expect(emu.emulator.inventory().resources.map((r) => r.name)).toEqual(["vnet"]);
  }, 400_000);
});
