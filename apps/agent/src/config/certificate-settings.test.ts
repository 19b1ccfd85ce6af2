import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { describe, expect, it } from "vitest";
import { loadSettings, saveSettings } from "./load.js";
import { dataPaths } from "./paths.js";
import { DEFAULT_SETTINGS, LETS_ENCRYPT_DIRECTORY } from "./settings.js";

async function tempPaths() {
  return dataPaths(makeDataDir("nbf-cert-settings-", 0o700));
}

const acme = {
  ...DEFAULT_SETTINGS.certificate,
  mode: "acme" as const,
  hostname: "nb1.westeurope.cloudapp.azure.com",
  email: "ops@example.com",
};

describe("certificate settings", () => {
  it("an older agent's file (no certificate field) reads as self-signed, Let's Encrypt the ACME default", async () => {
    const paths = await tempPaths();
    const { certificate: _none, ...older } = DEFAULT_SETTINGS;
    await writeFile(paths.settingsFile, JSON.stringify(older));
    const { certificate } = await loadSettings(paths);
    expect(certificate.mode).toBe("self-signed");
    expect(certificate.directoryUrl).toBe(LETS_ENCRYPT_DIRECTORY);
  });

  it("keeps ACME settings across a save and a load", async () => {
    const paths = await tempPaths();
    await saveSettings(paths, { ...DEFAULT_SETTINGS, certificate: acme });
    expect((await loadSettings(paths)).certificate).toEqual(acme);
  });

  it("refuses mode acme without a hostname, naming the field", async () => {
    const paths = await tempPaths();
    await expect(loadSettings(paths, { certificate: { ...acme, hostname: null } })).rejects.toThrow(
      /certificate\.hostname is null/,
    );
  });

  it("refuses a hostname that is not a DNS name, a plain-http directory and an unknown challenge", async () => {
    const paths = await tempPaths();
    await expect(loadSettings(paths, { certificate: { ...acme, hostname: "nb_1 example" } })).rejects.toThrow(
      /certificate\.hostname/,
    );
    await expect(
      loadSettings(paths, { certificate: { ...acme, directoryUrl: "http://acme.example/dir" } }),
    ).rejects.toThrow(/certificate\.directoryUrl/);
    await expect(
      loadSettings(paths, { certificate: { ...acme, challenge: "dns-01" as "http-01" } }),
    ).rejects.toThrow(/certificate\.challenge/);
  });
});
