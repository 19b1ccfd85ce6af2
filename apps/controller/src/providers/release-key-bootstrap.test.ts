/**
 * The providers put the built-in artifact's version and the controller's release public key
 * into every guest's bootstrap (checked on the Azure provider against the emulator, Linux
 * cloud-init and the Windows script; the local provider renders through the same helper).
 */
import type { RunningEmulator } from "@nbfleet/azure-emulator";
import { emulatorProvider, startTestEmulator } from "@nbfleet/testkit/azure";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { artifactVersionSettings } from "../artifact-info.js";
import { ensureReleaseKey } from "../artifacts/release-key.js";

let emu: RunningEmulator;
beforeAll(async () => {
  emu = await startTestEmulator();
}, 60_000);
afterAll(() => emu?.close());

const context = {
  bootstrapToken: "nbfb_guest-token-0123",
  controllerUrl: "https://controller.example",
  passwordHash: "sha1:0123456789ab:0123456789abcdef0123456789abcdef01234567",
};
const artifact = { file: "/nonexistent", sha256: "a".repeat(64), bytes: 1, version: "1.2.3" };

function customData(name: string): string {
  const vm = emu.emulator.store
    .list({ type: "Microsoft.Compute/virtualMachines" })
    .find((r) => r.name === name)!;
  return Buffer.from(vm.hidden.customData as string, "base64").toString("utf8");
}

describe("bootstrap carries the artifact version and the release public key", () => {
  it("on Linux (cloud-init) and Windows", async () => {
    const { publicKeyPem } = await ensureReleaseKey(makeDataDir());
    const options = { resourceGroup: "release-key", artifact, releasePublicKeyPem: publicKeyPem };
    await emulatorProvider(emu, options).create({ name: "rk-lin", labels: {}, providerData: null }, context);
    await emulatorProvider(emu, { ...options, image: "windows-2022" }).create(
      { name: "rk-win", labels: {}, providerData: null },
      context,
    );
    const keyLines = publicKeyPem.trim().split("\n");
    const linux = customData("rk-lin");
    expect(linux).toContain("NBF_ARTIFACT_VERSION='1.2.3'");
    for (const line of keyLines) expect(linux).toContain(line);
    expect(linux).toContain("--release-key-file");
    const windows = customData("rk-win");
    expect(windows).toContain("$NbfArtifactVersion = '1.2.3'");
    for (const line of keyLines) expect(windows).toContain(line);
  }, 60_000);

  it("leaves out a version that is no artifact version, and no key means none", () => {
    expect(artifactVersionSettings({ ...artifact, version: "dev" }, undefined)).toEqual({});
    expect(artifactVersionSettings(artifact, "PEM")).toEqual({
      artifactVersion: "1.2.3",
      releasePublicKeyPem: "PEM",
    });
  });
});
