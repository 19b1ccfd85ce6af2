/**
 * `POST /v1/vms` `certificate`: what is stored and shown, what the provider is told
 * (ProvisionContext.certificate), the fleet default, and refusals that change nothing.
 */
import { readFileSync } from "node:fs";
import type { ControllerSettings } from "@nbfleet/controller";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { call } from "@nbfleet/testkit/http";
import { STORE_DIALECTS, type StoreDialect, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { selfSignedPair } from "@nbfleet/testkit/test-ca";
import { afterEach, describe, expect, it } from "vitest";
import type { Provider, ProviderVm, ProvisionContext, ProvisionResult } from "../../providers/types.js";

/** The real Provider interface, recording what `create` was given; no machine behind it. */
class RecordingProvider implements Provider {
  readonly name = "recording";
  readonly created: Array<{ vm: ProviderVm; context: ProvisionContext }> = [];
  readonly asked: string[] = [];
  publicHostname?: (vm: ProviderVm) => string | null;

  constructor(publicName?: (vm: ProviderVm) => string | null) {
    if (publicName)
      this.publicHostname = (vm) => {
        this.asked.push(vm.name);
        return publicName(vm);
      };
  }

  async create(vm: ProviderVm, context: ProvisionContext): Promise<ProvisionResult> {
    this.created.push({ vm, context });
    return { notebookUrl: null };
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async restart(): Promise<void> {}
  async delete(): Promise<void> {}
}

const dir = makeDataDir("nbf-vm-cert-", 0o700);
const ca = await selfSignedPair(dir, "acme-ca");
const ACME: Partial<ControllerSettings> = {
  acmeDirectory: "https://acme.internal.example:14000/dir",
  acmeEmail: "ops@example.org",
  acmeCaFile: ca.cert,
  acmeChallenge: "tls-alpn-01",
};

let controller: TestController | undefined;
afterEach(async () => {
  await controller?.close();
  controller = undefined;
});

async function start(
  dialect: StoreDialect,
  provider: RecordingProvider,
  settings: Partial<ControllerSettings> = ACME,
): Promise<TestController> {
  controller = await startTestController({
    settings: { ...(await freshStoreLocation(dialect)), ...settings },
    provider,
    listen: false,
  });
  return controller;
}

const create = (c: TestController, body: unknown) =>
  call(c.app, "POST", "/v1/vms", { token: c.adminToken, body });

describe.each(STORE_DIALECTS)("POST /v1/vms certificate on %s", (dialect) => {
  it("acme with a hostname: stored, shown, and handed to the provider with the ACME settings", async () => {
    const provider = new RecordingProvider();
    const c = await start(dialect, provider);
    const res = await create(c, { name: "nb1", certificate: { mode: "acme", hostname: "NB1.Example.org" } });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json().vm.certificate).toEqual({ mode: "acme", hostname: "nb1.example.org" });
    const shown = await call(c.app, "GET", "/v1/vms/nb1", { token: c.adminToken });
    expect(shown.json().certificate).toEqual({ mode: "acme", hostname: "nb1.example.org" });
    expect(provider.created).toHaveLength(1);
    expect(provider.created[0]!.context.certificate).toEqual({
      mode: "acme",
      hostname: "nb1.example.org",
      directoryUrl: "https://acme.internal.example:14000/dir",
      email: "ops@example.org",
      caPem: readFileSync(ca.cert, "utf8"),
      challenge: "tls-alpn-01",
      challengePort: 443,
    });
    // The other parts of the context are as before.
    expect(provider.created[0]!.context.bootstrapToken).toMatch(/^nbfb_/);
    expect(provider.created[0]!.context.passwordHash).toMatch(/^argon2:/);
  });

  it("self-signed, asked or by default: no certificate in the context, shown as self-signed", async () => {
    const provider = new RecordingProvider();
    const c = await start(dialect, provider);
    expect((await create(c, { name: "plain" })).json().vm.certificate).toEqual({
      mode: "self-signed",
      hostname: null,
    });
    const asked = await create(c, { name: "asked", certificate: { mode: "self-signed" } });
    expect(asked.json().vm.certificate).toEqual({ mode: "self-signed", hostname: null });
    const named = await create(c, {
      name: "named",
      certificate: { mode: "self-signed", hostname: "a.example" },
    });
    expect(named.json().vm.certificate).toEqual({ mode: "self-signed", hostname: "a.example" });
    expect(provider.created.map((x) => x.context.certificate)).toEqual([undefined, undefined, undefined]);
    const list = await call(c.app, "GET", "/v1/vms", { token: c.adminToken });
    expect(list.json().items.map((vm: { certificate: unknown }) => vm.certificate)).toEqual([
      { mode: "self-signed", hostname: null },
      { mode: "self-signed", hostname: "a.example" },
      { mode: "self-signed", hostname: null },
    ]);
  });

  it("acme without a hostname takes the provider's public name; the fleet default acme only where there is one", async () => {
    const provider = new RecordingProvider((vm) =>
      vm.name.startsWith("pub") ? `${vm.name}.westeurope.cloudapp.azure.com` : null,
    );
    const c = await start(dialect, provider, { ...ACME, acmeChallenge: "http-01", certificateMode: "acme" });
    const asked = await create(c, { name: "pub1", certificate: { mode: "acme" } });
    expect(asked.statusCode, asked.body).toBe(201);
    expect(asked.json().vm.certificate).toEqual({
      mode: "acme",
      hostname: "pub1.westeurope.cloudapp.azure.com",
    });
    expect(provider.created[0]!.context.certificate).toMatchObject({
      hostname: "pub1.westeurope.cloudapp.azure.com",
      challenge: "http-01",
      challengePort: 80,
    });
    // The request's name wins over the provider's.
    const own = await create(c, { name: "pub2", certificate: { mode: "acme", hostname: "lab.example.org" } });
    expect(own.json().vm.certificate).toEqual({ mode: "acme", hostname: "lab.example.org" });
    // The fleet default: acme where the provider names the machine, self-signed elsewhere.
    expect((await create(c, { name: "pub3" })).json().vm.certificate).toEqual({
      mode: "acme",
      hostname: "pub3.westeurope.cloudapp.azure.com",
    });
    expect((await create(c, { name: "private1" })).json().vm.certificate).toEqual({
      mode: "self-signed",
      hostname: null,
    });
    expect(provider.created.map((x) => x.context.certificate?.hostname ?? null)).toEqual([
      "pub1.westeurope.cloudapp.azure.com",
      "lab.example.org",
      "pub3.westeurope.cloudapp.azure.com",
      null,
    ]);
    // Asked with the machine's name, before it exists.
    expect(provider.asked).toEqual(["pub1", "pub3", "private1"]);
  });

  it("refuses acme without a hostname where the provider knows none, a hostile hostname, an unknown mode or extra fields, changing nothing", async () => {
    const provider = new RecordingProvider(() => null);
    const c = await start(dialect, provider);
    const cases: Array<[unknown, string]> = [
      [{ mode: "acme" }, "certificate.hostname"],
      [{ mode: "acme", hostname: "" }, "certificate.hostname"],
      [{ mode: "acme", hostname: "localhost" }, "certificate.hostname"],
      [{ mode: "acme", hostname: "127.0.0.1" }, "certificate.hostname"],
      [{ mode: "acme", hostname: "10.0.0.1" }, "certificate.hostname"],
      [{ mode: "acme", hostname: "*.example.org" }, "certificate.hostname"],
      [{ mode: "acme", hostname: "example.org." }, "certificate.hostname"],
      [{ mode: "acme", hostname: "-evil.example.org" }, "certificate.hostname"],
      [{ mode: "acme", hostname: "evil..example.org" }, "certificate.hostname"],
      [{ mode: "acme", hostname: "ex ample.org" }, "certificate.hostname"],
      [{ mode: "acme", hostname: "a.example.org\n--acme-directory http://evil" }, "certificate.hostname"],
      [{ mode: "acme", hostname: "a.example.org;rm -rf /" }, "certificate.hostname"],
      [{ mode: "acme", hostname: "$(id).example.org" }, "certificate.hostname"],
      [{ mode: "acme", hostname: "bücher.example" }, "certificate.hostname"],
      [{ mode: "acme", hostname: `${"a".repeat(64)}.example.org` }, "certificate.hostname"],
      [{ mode: "acme", hostname: `${"abcdefghi.".repeat(26)}org` }, "certificate.hostname"],
      [{ mode: "acme", hostname: 42 }, "certificate.hostname"],
      [{ mode: "self-signed", hostname: "192.168.1.1" }, "certificate.hostname"],
      [{ mode: "provided" }, "certificate.mode"],
      [{ mode: "ACME", hostname: "a.example.org" }, "certificate.mode"],
      [{ hostname: "a.example.org" }, "certificate.mode"],
      [{ mode: "acme", hostname: "a.example.org", challenge: "dns-01" }, "certificate.challenge"],
      [
        { mode: "acme", hostname: "a.example.org", directoryUrl: "https://evil.example/dir" },
        "certificate.directoryUrl",
      ],
      ["acme", "certificate"],
      [null, "certificate"],
      [["acme"], "certificate"],
    ];
    for (const [certificate, field] of cases) {
      const res = await create(c, { name: "nb1", certificate });
      const what = JSON.stringify(certificate);
      expect(res.statusCode, what).toBe(400);
      const { error } = res.json();
      expect(error.code, what).toBe("NBF_INVALID_BODY");
      expect(error.details.field, what).toBe(field);
      expect(error.message, what).toContain(field);
    }
    const missing = await create(c, { name: "nb1", certificate: { mode: "acme" } });
    expect(missing.json().error.message).toMatch(
      /certificate\.hostname is required with mode acme: provider recording knows no public DNS name/,
    );
    // Nothing stored, nothing provisioned, no token issued, no event.
    expect(provider.created).toEqual([]);
    expect((await call(c.app, "GET", "/v1/vms", { token: c.adminToken })).json().items).toEqual([]);
    expect((await call(c.app, "GET", "/v1/vms/nb1", { token: c.adminToken })).statusCode).toBe(404);
    const { store } = c.app.nbfleet;
    await store.writer.flush();
    expect(await store.agentSecrets.bootstrapOf("nb1")).toBeNull();
    expect(await store.events.list({ vmName: "nb1", limit: 10 })).toEqual([]);
    // The same name is then free for a good request.
    const good = await create(c, { name: "nb1", certificate: { mode: "acme", hostname: "nb1.example.org" } });
    expect(good.statusCode, good.body).toBe(201);
  });

  it("refuses a provider's unusable public name as the provider's failure, before anything is stored", async () => {
    const provider = new RecordingProvider(() => "not a name");
    const c = await start(dialect, provider, { ...ACME, certificateMode: "acme" });
    const res = await create(c, { name: "nb1" });
    expect(res.statusCode).toBe(502);
    expect(res.json().error).toMatchObject({ code: "NBF_PROVIDER_FAILED" });
    expect(res.json().error.message).toContain('"not a name"');
    expect(provider.created).toEqual([]);
    expect((await call(c.app, "GET", "/v1/vms/nb1", { token: c.adminToken })).statusCode).toBe(404);
  });
});
