/**
 * ACME on an Azure machine end to end, offline: `POST /v1/vms` with `certificate: {mode:
 * "acme"}` and no hostname → the provider makes the VM through the real Azure SDK against the
 * emulator, for its `<label>.westeurope.cloudapp.azure.com` name, with the NSG admitting the
 * HTTP-01 port → the emulated VM boots its customData through the real bootstrap → the bundled
 * agent gets the certificate from a real ACME server (Debian's pebble, which resolves the Azure
 * name to this host and validates the agent's HTTP-01 answer) → the notebook serves it, a client
 * trusting only pebble's root verifies it fully. Deleting the machine closes the port again.
 */
import { rm } from "node:fs/promises";
import path from "node:path";
import { type RunningEmulator, startEmulator } from "@nbfleet/azure-emulator";
import { buildAgentArtifact } from "@nbfleet/scripts";
import type { VmView } from "@nbfleet/shared";
import { FAST_DURATIONS, emulatorProvider } from "@nbfleet/testkit/azure";
import { api as client } from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { type SharedPebble, sharedPebble } from "@nbfleet/testkit/shared-pebble";
import { tlsProbe } from "@nbfleet/testkit/tls-probe";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultSettings } from "../../src/config/settings.js";
import { ACME_HTTP_RULE } from "../../src/providers/azure/acme.js";
import type { AzureProvider } from "../../src/providers/azure/azure-provider.js";
import { type NbfleetApp, buildServer, listen } from "../../src/server.js";

const NAME = "acme1";
const RG = "nbfleet-acme-e2e";
let root: string;
let emu: RunningEmulator;
let pebble: SharedPebble;
let provider: AzureProvider;
let app: NbfleetApp;
let url: string;
let token: string;
let fqdn: string;

const api = <T>(method: string, route: string, body?: unknown) =>
  client({ url, token })<T>(method, route, body);

const vm = async (name: string) => (await api<VmView>("GET", `/v1/vms/${name}`)).body;

const acmeRules = () =>
  emu.emulator.store
    .list({ type: "Microsoft.Network/networkSecurityGroups" })
    .filter((r) => r.resourceGroup === RG)
    .flatMap(
      (nsg) => nsg.properties.securityRules as Array<{ name: string; properties: Record<string, unknown> }>,
    )
    .filter((rule) => rule.name === ACME_HTTP_RULE);

/** Where the emulated VM serves its notebook: a loopback port here (a real VM: its public URL). */
function guestPort(name: string): number {
  const machine = emu.emulator
    .inventory()
    .resources.find((r) => r.type === "Microsoft.Compute/virtualMachines" && r.name === name);
  const port = machine?.guest?.notebookPort;
  if (!port) throw new Error(`the emulator has no notebook port for ${name}`);
  return port;
}

/** GET /api as `fqdn`, trusting `ca` alone: the status code, or the TLS error's code. */
async function verifiedApi(port: number, ca: string): Promise<number | string> {
  const probe = await tlsProbe({ port, servername: fqdn, ca, timeoutMs: 5000 });
  return probe.status ?? probe.error ?? "no answer";
}

beforeAll(async () => {
  // Mode 0755: notebooks run as the unprivileged `nbfleet` user when we are root; it must reach the guests.
  root = makeDataDir("nbf-azure-acme-e2e-");
  const artifact = await buildAgentArtifact({ outDir: path.join(root, "artifact") });
  emu = await startEmulator({
    dataDir: path.join(root, "emulator"),
    guests: "sandbox",
    durations: FAST_DURATIONS,
  });
  provider = emulatorProvider(emu, { resourceGroup: RG, artifact });
  fqdn = provider.publicHostname({ name: NAME })!;
  pebble = await sharedPebble(fqdn);
  app = await buildServer(
    {
      ...defaultSettings(),
      dataDir: path.join(root, "controller"),
      listen: "127.0.0.1:0",
      logLevel: "silent",
      stateFlushMs: 20,
      commandSweepMs: 50,
      reportIntervalSec: 2,
      acmeDirectory: pebble.directoryUrl,
      acmeCaFile: pebble.caFile,
      acmeEmail: "ops@example.org",
      // pebble validates HTTP-01 on this port of 127.0.0.1; on Azure it is 80.
      acmeChallengePort: pebble.httpPort,
    },
    { provider, artifact },
  );
  url = await listen(app);
  token = app.nbfleet.adminToken.token!;
});

afterAll(async () => {
  await app?.close();
  await emu?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

describe("an ACME machine on the Azure emulator, with a real agent, Jupyter and pebble", () => {
  it("gets a certificate for its Azure name over HTTP-01 and serves it; deleting it closes the port", async () => {
    const created = await api<{ vm: VmView }>("POST", "/v1/vms", {
      name: NAME,
      certificate: { mode: "acme" },
    });
    expect(created.status).toBe(201);
    expect(created.body.vm.certificate).toEqual({ mode: "acme", hostname: fqdn });
    expect(fqdn).toMatch(/^acme1-[0-9a-f]{6}\.westeurope\.cloudapp\.azure\.com$/);
    expect(acmeRules()).toEqual([
      expect.objectContaining({
        properties: expect.objectContaining({ destinationPortRange: String(pebble.httpPort), priority: 120 }),
      }),
    ]);

    const served = await waitFor(
      `${NAME} serving pebble's certificate`,
      async () => {
        const view = await vm(NAME);
        return view.notebook.certificate?.issuer?.kind === "acme" && view;
      },
      300_000,
    ).catch(async (error: Error) => {
      const view = await vm(NAME);
      throw new Error(
        `${error.message}\nstate ${view.state}, agent ${view.agent.status}, notebook ${view.notebook.state}, tls: ${JSON.stringify(view.health.checks.find((c) => c.name === "tls"))}\npebble:\n${(await pebble.log()).slice(-3000)}`,
      );
    });
    expect(served.notebook.url).toBe(`https://${fqdn}/`);
    expect(served.notebook.certificate?.chainValid).toBe(true);

    const port = guestPort(NAME);
    const root = await pebble.rootPem();
    // The agent restarts the notebook once to serve the new chain.
    await waitFor(
      "the notebook answering with the ACME chain",
      async () => (await verifiedApi(port, root)) === 200,
    );
    // Without pebble's root the same connection is refused: the check above is not vacuous.
    expect(await verifiedApi(port, pebble.caPem)).not.toBe(200);

    expect((await api("DELETE", `/v1/vms/${NAME}`)).status).toBe(204);
    expect(acmeRules()).toEqual([]);
  });
});
