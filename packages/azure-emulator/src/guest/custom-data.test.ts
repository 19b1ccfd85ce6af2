/** Reading the bootstrap settings back out of the cloud-init customData that @nbfleet/scripts renders. */
import { customDataBase64, renderCloudInit } from "@nbfleet/scripts";
import { describe, expect, it } from "vitest";
import { CustomDataError, bootstrapScript, bootstrapSettings } from "./custom-data.js";

const CA = "-----BEGIN CERTIFICATE-----\nMIIB'quote\"$(not run)`x`\n-----END CERTIFICATE-----";
const base = {
  controllerUrl: "https://controller.example:7443",
  artifactUrl: "https://controller.example:7443/v1/agent/artifact",
  artifactSha256: "a".repeat(64),
  bootstrapToken: "nbfb_token-with-'quote'",
  passwordHash: "argon2:$argon2id$v=19$m=10240,t=10,p=8$c2FsdA$aGFzaA",
  runAs: "azureuser",
  hostnames: ["vm1-abc.westeurope.cloudapp.azure.com"],
  publicUrl: "https://vm1-abc.westeurope.cloudapp.azure.com/",
};

describe("customData → bootstrap settings", () => {
  it("reads every setting the cloud-config's bootstrap carries, quoting included", async () => {
    const customData = customDataBase64(renderCloudInit({ ...base, controllerCaPem: CA }));
    const settings = await bootstrapSettings(bootstrapScript(customData));
    expect(settings).toEqual({
      controllerUrl: base.controllerUrl,
      artifactUrl: base.artifactUrl,
      artifactSha256: base.artifactSha256,
      bootstrapToken: base.bootstrapToken,
      controllerCaPem: CA,
      controllerFingerprint: null,
      controllerCertPem: null,
      passwordHash: base.passwordHash,
      runAs: "azureuser",
      allowRoot: false,
      notebookPort: 9999,
      hostnames: base.hostnames,
      publicUrl: base.publicUrl,
      certificate: null,
    });
  });

  it("reads an ACME certificate setting (flags and the CA), quoting included", async () => {
    const certificate = {
      mode: "acme" as const,
      hostname: "vm1-abc.westeurope.cloudapp.azure.com",
      directoryUrl: "https://acme.example:14000/dir",
      email: "ops@example.org",
      caPem: CA,
      challenge: "http-01" as const,
      challengePort: 5002,
    };
    const read = async (extra: object) =>
      (await bootstrapSettings(bootstrapScript(customDataBase64(renderCloudInit({ ...base, ...extra })))))
        .certificate;
    expect(await read({ certificate })).toEqual(certificate);
    const { caPem: _ca, ...withoutCa } = certificate;
    expect(await read({ certificate: { ...withoutCa, email: null } })).toEqual({ ...withoutCa, email: null });
  });

  it("reads a pinned fingerprint and the certificate it pins", async () => {
    const fingerprint = Array.from({ length: 32 }, () => "AB").join(":");
    const settings = await bootstrapSettings(
      bootstrapScript(
        customDataBase64(
          renderCloudInit({ ...base, controllerFingerprint: fingerprint, controllerCertPem: CA }),
        ),
      ),
    );
    expect(settings.controllerFingerprint).toBe(fingerprint);
    expect(settings.controllerCertPem).toBe(CA);
    expect(settings.controllerCaPem).toBeNull();
  });

  it("refuses customData that is not an nbfleet cloud-config", async () => {
    expect(() => bootstrapScript(Buffer.from("#!/bin/sh\necho hi\n").toString("base64"))).toThrow(
      CustomDataError,
    );
    const other = Buffer.from(
      "#cloud-config\nwrite_files: [{path: /x.sh, content: 'echo'}]\nruncmd: [[sh, /x.sh]]\n",
    );
    const script = bootstrapScript(other.toString("base64"));
    expect(script).toBe("echo");
    await expect(bootstrapSettings(script)).rejects.toThrow(/not an nbfleet bootstrap/);
  });
});
