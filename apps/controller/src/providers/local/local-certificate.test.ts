/**
 * The local provider hands ProvisionContext.certificate to the sandbox's bootstrap: the agent
 * is started for ACME with the settings the controller gave, and the CA travels with it.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { makeTestCa } from "@nbfleet/testkit/test-ca";
import { afterEach, describe, expect, it } from "vitest";
import type { ProviderVm, ProvisionContext } from "../types.js";
import { LocalProvider } from "./local-provider.js";

const root = makeDataDir("nbf-local-cert-");
const provider = new LocalProvider({
  root,
  artifact: { file: "/nonexistent", sha256: "a".repeat(64), bytes: 1, version: "0.0.0-test" },
});
const made: ProviderVm[] = [];
afterEach(async () => {
  for (const vm of made.splice(0)) await provider.delete(vm);
});

/** Nothing listens there: the bootstrap stops at the artifact's download, after it was written. */
async function context(): Promise<ProvisionContext> {
  return {
    bootstrapToken: "nbfb_local-cert-token-0123",
    controllerUrl: `http://127.0.0.1:${await freePort()}`,
    passwordHash: "sha1:0123456789ab:0123456789abcdef0123456789abcdef01234567",
  };
}

async function bootstrapOf(name: string, extra: Partial<ProvisionContext>): Promise<string> {
  const vm = { name, labels: {}, providerData: null };
  made.push(vm);
  await expect(provider.create(vm, { ...(await context()), ...extra })).rejects.toThrow(/bootstrap failed/);
  return readFile(path.join(root, name, "bootstrap.sh"), "utf8");
}

describe("local provider and ACME", () => {
  it("starts the sandbox's agent for ACME with the controller's settings and its CA", async () => {
    const ca = await makeTestCa("local ACME CA");
    const script = await bootstrapOf("acme1", {
      certificate: {
        mode: "acme",
        hostname: "acme1.example.org",
        directoryUrl: "https://127.0.0.1:14000/dir",
        email: "ops@example.org",
        caPem: ca.caPem,
        challenge: "http-01",
        challengePort: 5002,
      },
    });
    expect(script).toContain("--certificate-mode acme");
    expect(script).toContain("acme1.example.org");
    expect(script).toContain("https://127.0.0.1:14000/dir");
    expect(script).toContain("ops@example.org");
    expect(script).toContain("5002");
    for (const line of ca.caPem.trim().split("\n")) expect(script).toContain(line);
    expect(script).toMatch(/--acme-ca-file \S*acme-ca\.pem/);
  }, 60_000);

  it("says nothing of ACME without a certificate (self-signed)", async () => {
    const script = await bootstrapOf("plain1", {});
    expect(script).not.toContain("--certificate-mode");
    expect(script).toContain("NBF_ACME_CA_PEM=''");
  }, 60_000);
});
