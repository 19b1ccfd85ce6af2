/**
 * ACME on the Azure provider, through the real Azure SDK against the emulator: the public name
 * the certificate is for, what the guests' custom data carries, the NSG's HTTP-01 rule (made
 * once, kept across restarts, closed with the last ACME machine or a failed first one) and the
 * refusal of TLS-ALPN-01 before any Azure call.
 */
import type { RunningEmulator } from "@nbfleet/azure-emulator";
import type { VmView } from "@nbfleet/shared";
import { emulatorProvider, startTestEmulator } from "@nbfleet/testkit/azure";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ControllerSettings } from "../../config/settings.js";
import type { GuestCertificate, ProvisionContext } from "../types.js";
import { ACME_HTTP_RULE, ACME_TAG } from "./acme.js";
import type { AzureProvider } from "./azure-provider.js";

let emu: RunningEmulator;

const DIRECTORY = "https://acme.internal.example:14000/dir";
const ACME_CA = "-----BEGIN CERTIFICATE-----\nMIIBacmeTestRoot\n-----END CERTIFICATE-----";

const acme = (overrides: Partial<GuestCertificate> = {}): GuestCertificate => ({
  mode: "acme",
  hostname: "",
  directoryUrl: DIRECTORY,
  email: "ops@example.org",
  caPem: ACME_CA,
  challenge: "http-01",
  challengePort: 80,
  ...overrides,
});

const context = (certificate?: GuestCertificate): ProvisionContext => ({
  bootstrapToken: "nbfb_acme-test-token-01",
  controllerUrl: "https://controller.example",
  passwordHash: "sha1:0123456789ab:0123456789abcdef0123456789abcdef01234567",
  ...(certificate ? { certificate } : {}),
});

const machine = (name: string) => ({ name, labels: {}, providerData: null });

function customData(rg: string, name: string): string {
  const vm = emu.emulator.store
    .list({ type: "Microsoft.Compute/virtualMachines" })
    .find((r) => r.resourceGroup === rg && r.name === name);
  if (!vm) throw new Error(`no VM ${name} in ${rg}`);
  return Buffer.from(vm.hidden.customData as string, "base64").toString("utf8");
}

function nsgRules(rg: string) {
  const nsg = emu.emulator.store
    .list({ type: "Microsoft.Network/networkSecurityGroups" })
    .find((r) => r.resourceGroup === rg);
  if (!nsg) throw new Error(`no NSG in ${rg}`);
  const rules = nsg.properties.securityRules as Array<{ name: string; properties: Record<string, unknown> }>;
  return rules.map((r): Record<string, unknown> & { name: string } => ({ ...r.properties, name: r.name }));
}

/** The Linux launcher's agent command line (`set -- node … up …`). */
function agentLine(cloudInit: string): string {
  const line = cloudInit.split("\n").find((l) => l.trim().startsWith("set -- ") && l.includes(" up "));
  if (!line) throw new Error("no agent command line in the custom data");
  return line;
}

const acmeRules = (rg: string) => nsgRules(rg).filter((r) => r.name === ACME_HTTP_RULE);
const inGroup = (rg: string) => emu.emulator.inventory().resources.filter((r) => r.resourceGroup === rg);

async function withController<T>(
  provider: AzureProvider,
  settings: Partial<ControllerSettings>,
  work: (c: TestController) => Promise<T>,
): Promise<T> {
  const controller = await startTestController({ provider, listen: false, settings });
  try {
    return await work(controller);
  } finally {
    await controller.close();
  }
}

async function createVm(c: TestController, body: Record<string, unknown>) {
  const response = await call(c.app, "POST", "/v1/vms", { token: c.adminToken, body });
  return {
    status: response.statusCode,
    body: response.json() as { vm: VmView; error?: { code: string; message: string } },
  };
}

beforeAll(async () => {
  emu = await startTestEmulator();
});

afterAll(async () => {
  await emu?.close();
});

beforeEach(() => {
  emu.emulator.faults.clear();
});

describe("ACME on the azure provider", () => {
  it("gives the machine's public name, the one its notebook URL has", async () => {
    const provider = emulatorProvider(emu, { resourceGroup: "acme-name" });
    const fqdn = provider.publicHostname(machine("nb1"));
    expect(fqdn).toMatch(/^nb1-[0-9a-f]{6}\.westeurope\.cloudapp\.azure\.com$/);
    const created = await provider.create(machine("nb1"), context());
    expect(created.notebookUrl).toBe(`https://${fqdn}/`);
    // A name Azure would refuse has no public name.
    expect(provider.publicHostname(machine("bad_name"))).toBeNull();
  });

  it("an ACME machine's custom data carries the acme flags for its FQDN; a self-signed one's carries none", async () => {
    const rg = "acme-data";
    const provider = emulatorProvider(emu, { resourceGroup: rg });
    const windows = emulatorProvider(emu, { resourceGroup: rg, image: "windows-2022" });
    const fqdn = provider.publicHostname(machine("lin1"))!;
    const winFqdn = windows.publicHostname(machine("win1"))!;
    await provider.create(machine("lin1"), context(acme()));
    await windows.create(machine("win1"), context(acme()));
    await provider.create(machine("plain"), context());

    const linux = agentLine(customData(rg, "lin1"));
    for (const flag of [
      "--certificate-mode acme",
      `--acme-hostname ${fqdn}`,
      `--acme-directory ${DIRECTORY}`,
      "--acme-email ops@example.org",
      "--acme-challenge http-01",
      "--acme-challenge-port 80",
      "--acme-ca-file /opt/nbfleet/acme-ca.pem",
    ]) {
      expect(linux).toContain(flag);
    }
    expect(customData(rg, "lin1")).toContain("MIIBacmeTestRoot");
    // The self-signed fallback's names and the reported URL stay the FQDN.
    expect(linux).toContain(`--hostname ${fqdn}`);
    expect(linux).toContain(`--public-url https://${fqdn}/`);

    const powershell = customData(rg, "win1");
    for (const flag of [
      "--certificate-mode acme",
      `--acme-hostname ${winFqdn}`,
      "--acme-challenge http-01",
    ]) {
      expect(powershell).toContain(flag);
    }

    const plain = customData(rg, "plain");
    expect(agentLine(plain)).toContain("--hostname plain-");
    expect(plain).not.toMatch(/--certificate-mode|--acme-|MIIBacmeTestRoot/);
    expect(plain).toContain("NBF_ACME_CA_PEM=''");
  });

  it("certifies the request's own hostname when it names one, and reports the notebook there", async () => {
    const rg = "acme-host";
    const provider = emulatorProvider(emu, { resourceGroup: rg });
    const fqdn = provider.publicHostname(machine("own"))!;
    const created = await provider.create(
      machine("own"),
      context(acme({ hostname: "notebooks.example.org", email: null, caPem: null })),
    );
    expect(created.notebookUrl).toBe("https://notebooks.example.org/");
    const data = agentLine(customData(rg, "own"));
    expect(data).toContain("--acme-hostname notebooks.example.org");
    expect(data).not.toContain("--acme-email");
    expect(data).not.toContain("--acme-ca-file");
    // Both names in the self-signed fallback: the CNAME and Azure's own.
    expect(data).toContain("--hostname notebooks.example.org");
    expect(data).toContain(`--hostname ${fqdn}`);
  });

  it("admits TCP 80 once for two ACME machines, keeps it over a restart, and closes it with the last one", async () => {
    const rg = "acme-nsg";
    const options = { resourceGroup: rg, sshSourceRanges: ["203.0.113.0/24"] };
    const provider = emulatorProvider(emu, options);
    await provider.create(machine("plain"), context());
    expect(acmeRules(rg)).toEqual([]);

    await Promise.all(["a1", "a2"].map((name) => provider.create(machine(name), context(acme()))));
    expect(acmeRules(rg)).toEqual([
      expect.objectContaining({
        name: ACME_HTTP_RULE,
        priority: 120,
        direction: "Inbound",
        access: "Allow",
        protocol: "Tcp",
        destinationPortRange: "80",
        sourceAddressPrefix: "*",
      }),
    ]);
    expect(
      nsgRules(rg)
        .map((r) => `${r.name}:${r.priority}`)
        .sort(),
    ).toEqual([`${ACME_HTTP_RULE}:120`, "nbfleet-notebook:100", "nbfleet-ssh:110"]);
    const tagged = inGroup(rg).filter((r) => r.tags[ACME_TAG] !== undefined);
    expect(tagged.map((r) => `${r.type.split("/").pop()}/${r.name}`).sort()).toEqual([
      "virtualMachines/a1",
      "virtualMachines/a2",
    ]);

    // A third ACME machine costs no NSG write: IP, NIC and VM only.
    emu.emulator.resetStats();
    await provider.create(machine("a3"), context(acme()));
    expect(emu.emulator.getStats().writes).toBe(3);

    // A restarted controller (a new provider) neither drops the rule nor adds it twice.
    const restarted = emulatorProvider(emu, options);
    await restarted.create(machine("plain2"), context());
    await restarted.create(machine("a4"), context(acme()));
    expect(acmeRules(rg)).toHaveLength(1);

    const record = (name: string, acmeHttpPort?: number) => ({
      name,
      labels: {},
      providerData: {
        resourceGroup: rg,
        names: { vm: name, osDisk: `${name}-osdisk`, nic: `${name}-nic`, publicIp: `${name}-ip` },
        ...(acmeHttpPort ? { acmeHttpPort } : {}),
      },
    });
    for (const name of ["a1", "a2", "a3"]) {
      await restarted.delete(record(name, 80));
      expect(acmeRules(rg)).toHaveLength(1);
    }
    await restarted.delete(record("plain"));
    await restarted.delete(record("a4", 80));
    expect(acmeRules(rg)).toEqual([]);
    expect(
      nsgRules(rg)
        .map((r) => r.name)
        .sort(),
    ).toEqual(["nbfleet-notebook", "nbfleet-ssh"]);
  });

  it("closes port 80 when the reconcile finds the last ACME machine deleted outside nbfleet", async () => {
    const rg = "acme-outside";
    const provider = emulatorProvider(emu, { resourceGroup: rg });
    await provider.create(machine("a5"), context(acme()));
    expect(acmeRules(rg)).toHaveLength(1);
    const record = (acmeHttpPort?: number) => ({
      name: "a5",
      labels: {},
      providerData: {
        resourceGroup: rg,
        names: { vm: "a5", osDisk: "a5-osdisk", nic: "a5-nic", publicIp: "a5-ip" },
        ...(acmeHttpPort ? { acmeHttpPort } : {}),
      },
    });
    // Gone from Azure without nbfleet's delete path (which would close the port itself).
    await provider.delete(record());
    expect(acmeRules(rg)).toHaveLength(1);
    const report = await provider.reconcile([record(80)]);
    expect(report.missing).toEqual(["a5"]);
    expect(acmeRules(rg)).toEqual([]);
  });

  it("a first ACME machine that fails leaves port 80 closed and nothing of it behind", async () => {
    const rg = "acme-fail";
    const provider = emulatorProvider(emu, { resourceGroup: rg, retry: { maxRetries: 0 } });
    await provider.ensureFleet();
    emu.emulator.resetStats();
    emu.emulator.addFault({
      resourceType: "Microsoft.Network/networkInterfaces",
      method: "PUT",
      status: 500,
      code: "InternalServerError",
      message: "An error occurred while creating the network interface.",
    });
    await expect(provider.create(machine("doomed"), context(acme()))).rejects.toThrow(/InternalServerError/);
    // Opened for it, then closed again.
    expect(emu.emulator.getStats().writesByType["Microsoft.Network/networkSecurityGroups PUT"]).toBe(2);
    expect(acmeRules(rg)).toEqual([]);
    expect(
      inGroup(rg)
        .map((r) => r.type.split("/").pop())
        .sort(),
    ).toEqual(["networkSecurityGroups", "virtualNetworks"]);
  });

  it("refuses tls-alpn-01 before any Azure call, saying to use http-01; nothing is made", async () => {
    const rg = "acme-alpn";
    const provider = emulatorProvider(emu, { resourceGroup: rg });
    emu.emulator.resetStats();
    const refused = provider.create(
      machine("alpn"),
      context(acme({ challenge: "tls-alpn-01", challengePort: 443 })),
    );
    await expect(refused).rejects.toThrow(/tls-alpn-01 is not supported on Azure/);
    await expect(refused).rejects.toThrow(/set NBFLEET_ACME_CHALLENGE=http-01/);
    // HTTP-01 on the public notebook port would meet the guest's redirect to the notebook.
    await expect(provider.create(machine("clash"), context(acme({ challengePort: 443 })))).rejects.toThrow(
      /ACME challenge port 443 is the public notebook port/,
    );
    expect(emu.emulator.getStats().requests).toBe(0);
    expect(emu.emulator.inventory().resourceGroups.map((g) => g.name)).not.toContain(rg);
    expect(inGroup(rg)).toEqual([]);
  });

  it("through the API: acme without a hostname is for the Azure name; the fleet default acme too, self-signed when asked", async () => {
    const rg = "acme-api";
    const provider = emulatorProvider(emu, { resourceGroup: rg });
    const settings = {
      acmeDirectory: DIRECTORY,
      acmeEmail: "ops@example.org",
      certificateMode: "acme" as const,
    };
    await withController(provider, settings, async (c) => {
      const asked = await createVm(c, { name: "api1", certificate: { mode: "acme" } });
      expect(asked.status).toBe(201);
      const fqdn = provider.publicHostname(machine("api1"))!;
      expect(asked.body.vm.certificate).toEqual({ mode: "acme", hostname: fqdn });
      expect(asked.body.vm.notebook.url).toBe(`https://${fqdn}/`);
      const line = agentLine(customData(rg, "api1"));
      expect(line).toContain(`--acme-hostname ${fqdn}`);
      expect(line).toContain(`--acme-directory ${DIRECTORY}`);
      expect(line).toContain("--acme-challenge http-01 --acme-challenge-port 80");

      const byDefault = await createVm(c, { name: "api2" });
      expect(byDefault.body.vm.certificate).toEqual({
        mode: "acme",
        hostname: provider.publicHostname(machine("api2")),
      });
      expect(agentLine(customData(rg, "api2"))).toContain("--certificate-mode acme");

      const selfSigned = await createVm(c, { name: "api3", certificate: { mode: "self-signed" } });
      expect(selfSigned.body.vm.certificate.mode).toBe("self-signed");
      expect(customData(rg, "api3")).not.toMatch(/--certificate-mode|--acme-/);
      expect(acmeRules(rg)).toHaveLength(1);

      for (const name of ["api1", "api2"]) {
        expect((await call(c.app, "DELETE", `/v1/vms/${name}`, { token: c.adminToken })).statusCode).toBe(
          204,
        );
      }
      // Only the self-signed machine is left: port 80 is closed again.
      expect(acmeRules(rg)).toEqual([]);
    });
  });

  it("through the API: tls-alpn-01 is refused before anything is stored, with the reason; self-signed ones still work", async () => {
    const rg = "acme-api-alpn";
    const provider = emulatorProvider(emu, { resourceGroup: rg });
    const settings = { acmeDirectory: DIRECTORY, acmeChallenge: "tls-alpn-01" as const };
    await withController(provider, settings, async (c) => {
      emu.emulator.resetStats();
      const refused = await createVm(c, { name: "alpn1", certificate: { mode: "acme" } });
      expect(refused.status).toBe(400);
      expect(refused.body.error?.code).toBe("NBF_PROVIDER_CERTIFICATE_UNSUPPORTED");
      expect(refused.body.error?.message).toMatch(
        /tls-alpn-01 is not supported on Azure.*set NBFLEET_ACME_CHALLENGE=http-01/,
      );
      const missing = await call(c.app, "GET", "/v1/vms/alpn1", { token: c.adminToken });
      expect(missing.statusCode).toBe(404);
      expect(emu.emulator.getStats().requests).toBe(0);
      expect(inGroup(rg)).toEqual([]);

      const plain = await createVm(c, { name: "plain1" });
      expect(plain.body.vm.state).toBe("running");
      expect(acmeRules(rg)).toEqual([]);
      expect(inGroup(rg).filter((r) => r.name.startsWith("alpn1"))).toEqual([]);
    });
  });
});
