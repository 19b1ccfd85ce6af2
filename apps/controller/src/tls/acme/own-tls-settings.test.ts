/** `acmeDomain` in the settings, and what guests of an ACME-served controller trust. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { makeTestCa, selfSignedPair } from "@nbfleet/testkit/test-ca";
import { describe, expect, it } from "vitest";
import { loadSettings } from "../../config/settings.js";
import { controllerGuestTrust } from "../files.js";

const home = makeDataDir("nbf-acme-domain-", 0o700);
const load = (env: Record<string, string>, flags = {}) =>
  loadSettings({ env: { NBFLEET_DATA_DIR: home, ...env }, flags, home });

describe("acmeDomain", () => {
  it("is read from NBFLEET_ACME_DOMAIN or the flag, null by default", () => {
    expect(load({}).acmeDomain).toBeNull();
    expect(load({ NBFLEET_ACME_DOMAIN: "ctl.example.com" }).acmeDomain).toBe("ctl.example.com");
    expect(load({ NBFLEET_ACME_DOMAIN: "a.example.com" }, { acmeDomain: "b.example.com" }).acmeDomain).toBe(
      "b.example.com",
    );
  });

  it("refuses a bad name, a second source of the certificate and plain agent URLs, naming each", () => {
    expect(() => load({ NBFLEET_ACME_DOMAIN: "not a name" })).toThrow(/acmeDomain/);
    expect(() => load({ NBFLEET_ACME_DOMAIN: "localhost" })).toThrow(/acmeDomain/);
    expect(() =>
      load({ NBFLEET_ACME_DOMAIN: "ctl.example.com", NBFLEET_TLS_CERT: "/c.pem", NBFLEET_TLS_KEY: "/k.pem" }),
    ).toThrow(
      expect.objectContaining({
        code: "NBF_CONFIG_INVALID",
        details: expect.objectContaining({ source: "acmeDomain" }),
      }),
    );
    expect(() =>
      load({
        NBFLEET_ACME_DOMAIN: "ctl.example.com",
        NBFLEET_CONTROLLER_URLS: "http://ctl.example.com:7070",
      }),
    ).toThrow(
      expect.objectContaining({
        details: expect.objectContaining({
          problems: expect.stringContaining("with acmeDomain, agents verify the controller"),
        }),
      }),
    );
  });
});

describe("controllerGuestTrust", () => {
  it("ACME: the given CA, else nothing (the guest's system roots), never a pin", async () => {
    const ca = await makeTestCa("private ACME root");
    const caFile = join(home, "root.pem");
    writeFileSync(caFile, ca.caPem);
    const base = { tlsCert: null, tlsKey: null, acmeDomain: "ctl.example.com" };
    expect(controllerGuestTrust({ ...base, tlsCa: caFile })).toEqual({ caPem: ca.caPem });
    expect(controllerGuestTrust({ ...base, tlsCa: null })).toBeUndefined();
    const garbage = join(home, "garbage.pem");
    writeFileSync(garbage, "not a certificate");
    expect(() => controllerGuestTrust({ ...base, tlsCa: garbage })).toThrow(
      /garbage\.pem is not a PEM certificate/,
    );
    expect(() => controllerGuestTrust({ ...base, tlsCa: join(home, "missing.pem") })).toThrow(
      /cannot be read/,
    );
  });

  it("files: as before, the pin of the certificate", async () => {
    const pair = await selfSignedPair(home, "files");
    const trust = controllerGuestTrust({
      tlsCert: pair.cert,
      tlsKey: pair.key,
      tlsCa: null,
      acmeDomain: null,
    });
    expect(trust?.fingerprint).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
  });
});
