/** Choosing and configuring the provider from settings (NBFLEET_PROVIDER, AZURE_*, NBFLEET_AZURE_*). */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { RunningEmulator } from "@nbfleet/azure-emulator";
import { UNUSED_ARTIFACT, emulatorProvider, startTestEmulator } from "@nbfleet/testkit/azure";
import { startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { call } from "@nbfleet/testkit/http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadSettings } from "../config/settings.js";
import { AzureProvider } from "./azure/azure-provider.js";
import { providerFromSettings } from "./from-settings.js";
import { LocalProvider } from "./local/local-provider.js";

const home = makeDataDir("nbf-provider-settings-", 0o700);
let emu: RunningEmulator;

beforeAll(async () => {
  emu = await startTestEmulator();
});

afterAll(async () => {
  await emu?.close();
});

describe("provider from settings", () => {
  it("is local by default and azure when NBFLEET_PROVIDER=azure with a subscription", async () => {
    const local = await providerFromSettings(loadSettings({ env: { NBFLEET_DATA_DIR: home }, home }), {
      artifact: UNUSED_ARTIFACT,
    });
    expect(local).toBeInstanceOf(LocalProvider);
    const settings = loadSettings({
      env: {
        NBFLEET_DATA_DIR: home,
        NBFLEET_PROVIDER: "azure",
        AZURE_SUBSCRIPTION_ID: "00000000-0000-0000-0000-000000000001",
        NBFLEET_AZURE_LOCATION: "northeurope",
        NBFLEET_AZURE_RESOURCE_GROUP: "team-a",
        NBFLEET_AZURE_ENDPOINT: emu.endpoint,
        NBFLEET_AZURE_CA_FILE: emu.caFile,
        NBFLEET_AZURE_NOTEBOOK_SOURCES: "203.0.113.0/24, 198.51.100.7",
        NBFLEET_RECONCILE_INTERVAL_SEC: "60",
      },
      home,
    });
    expect(settings).toMatchObject({
      provider: "azure",
      azureLocation: "northeurope",
      reconcileIntervalSec: 60,
    });
    const azure = await providerFromSettings(settings, {
      artifact: UNUSED_ARTIFACT,
      trust: { fingerprint: "AB".repeat(32) },
    });
    expect(azure).toBeInstanceOf(AzureProvider);
    expect(azure.name).toBe("azure");
    // It really reaches the emulator with the CA from the file and the static test token.
    const report = await (azure as AzureProvider).reconcile([]);
    expect(report).toEqual({ missing: [], states: {}, orphans: [] });
  });

  it("says what is missing or wrong", async () => {
    const base = { NBFLEET_DATA_DIR: home, NBFLEET_PROVIDER: "azure" };
    await expect(
      providerFromSettings(loadSettings({ env: base, home }), { artifact: UNUSED_ARTIFACT }),
    ).rejects.toThrow(/AZURE_SUBSCRIPTION_ID/);
    const caWithoutEndpoint = loadSettings({
      env: { ...base, AZURE_SUBSCRIPTION_ID: "s", NBFLEET_AZURE_CA_FILE: emu.caFile },
      home,
    });
    await expect(providerFromSettings(caWithoutEndpoint, { artifact: UNUSED_ARTIFACT })).rejects.toThrow(
      /only for an emulator endpoint/,
    );
    const badCa = loadSettings({
      env: {
        ...base,
        AZURE_SUBSCRIPTION_ID: "s",
        NBFLEET_AZURE_ENDPOINT: emu.endpoint,
        NBFLEET_AZURE_CA_FILE: join(home, "nope.pem"),
      },
      home,
    });
    await expect(providerFromSettings(badCa, { artifact: UNUSED_ARTIFACT })).rejects.toThrow(
      /NBFLEET_AZURE_CA_FILE .*nope\.pem cannot be read/,
    );
    expect(() => loadSettings({ env: { ...base, NBFLEET_PROVIDER: "gcp" }, home })).toThrow(/provider/);
    expect(() => loadSettings({ env: { NBFLEET_AZURE_ENDPOINT: "http://127.0.0.1:1" }, home })).toThrow(
      /azureEndpoint/,
    );
    writeFileSync(join(home, "key.pub"), "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA me\n");
    const withKey = loadSettings({
      env: { ...base, AZURE_SUBSCRIPTION_ID: "s", NBFLEET_AZURE_SSH_PUBLIC_KEY_FILE: join(home, "key.pub") },
      home,
    });
    expect(await providerFromSettings(withKey, { artifact: UNUSED_ARTIFACT })).toBeInstanceOf(AzureProvider);
  });

  it("refuses a VM name the provider cannot make before storing it or calling Azure", async () => {
    const provider = emulatorProvider(emu, { resourceGroup: "names-api" });
    const c = await startTestController({ provider, listen: false });
    try {
      emu.emulator.resetStats();
      const name = "a".repeat(60);
      const response = await call(c.app, "POST", "/v1/vms", { token: c.adminToken, body: { name } });
      expect(response.statusCode).toBe(400);
      expect(response.json().error).toMatchObject({
        code: "NBF_PROVIDER_NAME_INVALID",
        message: expect.stringMatching(
          /^provider azure cannot make a machine named a{60}: .*at most 56 characters/,
        ),
      });
      expect(await c.app.nbfleet.store.vms.get(name)).toBeUndefined();
      expect(emu.emulator.getStats().requests).toBe(0);
    } finally {
      await c.close();
    }
  });
});
