/**
 * ACME on the Azure provider, through the real Azure SDK against the emulator: the public name
 * the certificate is for, what the guests' custom data carries, the NSG's HTTP-01 rule (made
 * once, kept across restarts, closed with the last ACME machine or a failed first one) and the
 * refusal of TLS-ALPN-01 before any Azure call.
 */
import type { RunningEmulator } from "@nbfleet/azure-emulator";
import { emulatorProvider, startTestEmulator } from "@nbfleet/testkit/azure";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
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
});
