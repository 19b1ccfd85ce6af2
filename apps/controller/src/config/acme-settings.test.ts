/** NBFLEET_ACME_* and NBFLEET_CERTIFICATE_MODE: defaults, good values, bad ones named, the CA file read at start. */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { makeTestCa, selfSignedPair } from "@nbfleet/testkit/test-ca";
import { describe, expect, it } from "vitest";
import { readAcmeSettings } from "./acme-settings.js";
import { loadSettings } from "./settings.js";

const home = makeDataDir("nbf-acme-config-", 0o700);
const dir = makeDataDir("nbf-acme-files-", 0o700);
const pair = await selfSignedPair(dir, "acme-ca");
const other = await makeTestCa("another ACME CA");
const caPem = readFileSync(pair.cert, "utf8");

const file = (name: string, content: string): string => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};
const load = (env: Record<string, string>) => loadSettings({ env, home });

describe("ACME settings", () => {
  it("default to Let's Encrypt over HTTP-01 on port 80, no email, no CA, self-signed VMs", () => {
    const settings = load({});
    expect(settings).toMatchObject({
      acmeDirectory: "https://acme-v02.api.letsencrypt.org/directory",
      acmeEmail: null,
      acmeCaFile: null,
      acmeChallenge: "http-01",
      acmeChallengePort: null,
      certificateMode: "self-signed",
    });
    expect(readAcmeSettings(settings)).toEqual({
      directoryUrl: "https://acme-v02.api.letsencrypt.org/directory",
      email: null,
      caPem: null,
      challenge: "http-01",
      challengePort: 80,
      defaultMode: "self-signed",
    });
  });

  it("take every variable, the challenge port defaulting by challenge, the CA file's content read", () => {
    const ca = file("bundle.pem", `${caPem}\n${other.caPem}`);
    const settings = load({
      NBFLEET_ACME_DIRECTORY: "https://127.0.0.1:14000/dir",
      NBFLEET_ACME_EMAIL: "ops@example.org",
      NBFLEET_ACME_CA_FILE: ca,
      NBFLEET_ACME_CHALLENGE: "tls-alpn-01",
      NBFLEET_CERTIFICATE_MODE: "acme",
    });
    expect(readAcmeSettings(settings)).toEqual({
      directoryUrl: "https://127.0.0.1:14000/dir",
      email: "ops@example.org",
      caPem: readFileSync(ca, "utf8"),
      challenge: "tls-alpn-01",
      challengePort: 443,
      defaultMode: "acme",
    });
    const port = load({ NBFLEET_ACME_CHALLENGE: "tls-alpn-01", NBFLEET_ACME_CHALLENGE_PORT: "5001" });
    expect(port.acmeChallengePort).toBe(5001);
    expect(readAcmeSettings(port).challengePort).toBe(5001);
    // A JSON settings file and flags speak the same names.
    const dataDir = makeDataDir("nbf-acme-data-", 0o700);
    writeFileSync(join(dataDir, "config.json"), JSON.stringify({ acmeChallengePort: 8080 }));
    const fromFile = loadSettings({
      env: { NBFLEET_DATA_DIR: dataDir },
      flags: { acmeEmail: "flag@example.org" },
      home,
    });
    expect(fromFile).toMatchObject({ acmeChallengePort: 8080, acmeEmail: "flag@example.org" });
  });

  it("refuse a bad value, naming the variable and what it must be", () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ NBFLEET_ACME_DIRECTORY: "http://acme.example/dir" }, /NBFLEET_ACME_DIRECTORY.*https:\/\/ URL/],
      [{ NBFLEET_ACME_DIRECTORY: "https://" }, /NBFLEET_ACME_DIRECTORY/],
      [{ NBFLEET_ACME_DIRECTORY: "https://a b/dir" }, /NBFLEET_ACME_DIRECTORY/],
      // What the guest's command line could not carry is refused at start, not at each create.
      [{ NBFLEET_ACME_DIRECTORY: "https://acme.example/dir?x=1" }, /NBFLEET_ACME_DIRECTORY.*without query/],
      [{ NBFLEET_ACME_DIRECTORY: "https://user:pw@acme.example/dir" }, /NBFLEET_ACME_DIRECTORY/],
      [{ NBFLEET_ACME_DIRECTORY: "https://acme.example/dir'; reboot" }, /NBFLEET_ACME_DIRECTORY/],
      [{ NBFLEET_ACME_EMAIL: "a'b@example.org" }, /NBFLEET_ACME_EMAIL/],
      [{ NBFLEET_ACME_EMAIL: "nobody" }, /NBFLEET_ACME_EMAIL.*email address.*"nobody"/],
      [{ NBFLEET_ACME_EMAIL: "a@b.c d" }, /NBFLEET_ACME_EMAIL/],
      [{ NBFLEET_ACME_CHALLENGE: "dns-01" }, /NBFLEET_ACME_CHALLENGE .*http-01 or tls-alpn-01.*"dns-01"/],
      [{ NBFLEET_ACME_CHALLENGE_PORT: "0" }, /NBFLEET_ACME_CHALLENGE_PORT.*TCP port/],
      [{ NBFLEET_ACME_CHALLENGE_PORT: "65536" }, /NBFLEET_ACME_CHALLENGE_PORT/],
      [{ NBFLEET_ACME_CHALLENGE_PORT: "80.5" }, /NBFLEET_ACME_CHALLENGE_PORT/],
      [{ NBFLEET_ACME_CHALLENGE_PORT: "eighty" }, /NBFLEET_ACME_CHALLENGE_PORT.*"eighty"/],
      [{ NBFLEET_CERTIFICATE_MODE: "provided" }, /NBFLEET_CERTIFICATE_MODE.*self-signed or acme/],
    ];
    for (const [env, message] of cases) {
      expect(() => load(env), JSON.stringify(env)).toThrow(message);
      try {
        load(env);
      } catch (error) {
        expect((error as { code?: string }).code).toBe("NBF_CONFIG_INVALID");
      }
    }
    const dataDir = makeDataDir("nbf-acme-bad-file-", 0o700);
    writeFileSync(join(dataDir, "config.json"), JSON.stringify({ acmeChallenge: "dns-01" }));
    expect(() => load({ NBFLEET_DATA_DIR: dataDir })).toThrow(/config\.json.*NBFLEET_ACME_CHALLENGE/);
  });

  it("refuse a CA file that is missing, not PEM, not a certificate, or carries a key, naming the variable and the file", () => {
    const settings = (path: string) => load({ NBFLEET_ACME_CA_FILE: path });
    const missing = join(dir, "missing.pem");
    const cases: Array<[string, RegExp]> = [
      [missing, /NBFLEET_ACME_CA_FILE.*missing\.pem cannot be read/],
      [file("empty.pem", ""), /NBFLEET_ACME_CA_FILE.*empty\.pem is not PEM/],
      [file("text.pem", "hello, I am a CA"), /text\.pem is not PEM/],
      [file("der.pem", "\u0030\u0082\u0001\u000a garbage"), /der\.pem is not PEM/],
      [file("key.pem", readFileSync(pair.key, "utf8")), /key\.pem holds PRIVATE KEY.*certificates only/],
      [
        file("cert-and-key.pem", `${caPem}${readFileSync(pair.key, "utf8")}`),
        /cert-and-key\.pem holds PRIVATE KEY/,
      ],
      [
        file(
          "broken.pem",
          `${caPem}-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n`,
        ),
        /broken\.pem certificate 2 does not parse/,
      ],
      [file("huge.pem", caPem.repeat(100)), /huge\.pem is \d+ bytes; at most 32768/],
    ];
    for (const [path, message] of cases) {
      let thrown: unknown;
      try {
        readAcmeSettings(settings(path));
      } catch (error) {
        thrown = error;
      }
      expect(thrown, path).toMatchObject({ code: "NBF_CONFIG_INVALID" });
      expect(String((thrown as Error).message), path).toMatch(message);
      expect(String((thrown as Error).message), path).toContain("ACME settings");
    }
  });

  it("are read when the controller starts: a bad CA file stops it before it serves", async () => {
    const bad = file("not-a-ca.pem", "not a certificate");
    await expect(
      startTestController({
        settings: { ...(await freshStoreLocation("sqlite")), acmeCaFile: bad },
        listen: false,
      }),
    ).rejects.toMatchObject({
      code: "NBF_CONFIG_INVALID",
      message: expect.stringMatching(/NBFLEET_ACME_CA_FILE.*not-a-ca\.pem/),
    });
    const good = await startTestController({
      settings: { ...(await freshStoreLocation("sqlite")), acmeCaFile: pair.cert },
      listen: false,
    });
    await good.close();
  });
});
