import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { agentCli } from "@nbfleet/testkit/agent-process";
import { makeTestCa } from "@nbfleet/testkit/test-ca";
import { Command } from "commander";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataPaths } from "../config/paths.js";
import { DEFAULT_SETTINGS } from "../config/settings.js";
import { type CertificateFlags, certificateFromFlags, withCertificateFlags } from "./certificate-flags.js";

const stored = DEFAULT_SETTINGS.certificate;
let dir: string;
let caFile: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "nbf-cert-flags-"));
  caFile = path.join(dir, "acme-ca.pem");
  await writeFile(caFile, (await makeTestCa("ACME server TLS CA")).caPem);
});
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Parses `argv` the way `up` does, and returns what the flags make of the defaults. */
function parse(argv: string[]): CertificateFlags {
  const command = withCertificateFlags(new Command().exitOverride().configureOutput({ writeErr: () => {} }));
  return command.parse(argv, { from: "user" }).opts<CertificateFlags>();
}

describe("up's certificate flags", () => {
  it("set every certificate.* field; relative CA file made absolute", async () => {
    const flags = parse([
      ...["--certificate-mode", "acme", "--acme-hostname", "nb1.westeurope.cloudapp.azure.com"],
      ...["--acme-directory", "https://pebble.test:14000/dir", "--acme-email", "ops@example.com"],
      ...["--acme-ca-file", path.relative(process.cwd(), caFile)],
      ...["--acme-challenge", "http-01", "--acme-challenge-port", "5002"],
    ]);
    expect(await certificateFromFlags(flags, stored)).toEqual({
      mode: "acme",
      hostname: "nb1.westeurope.cloudapp.azure.com",
      directoryUrl: "https://pebble.test:14000/dir",
      email: "ops@example.com",
      caFile,
      challenge: "http-01",
      challengePort: 5002,
    });
  });

  it("without a port, the challenge's own: 443 for tls-alpn-01, 80 for http-01", async () => {
    const acme = { ...stored, mode: "acme" as const, hostname: "nb.example.org", challengePort: 8080 };
    expect(await certificateFromFlags(parse(["--acme-challenge", "tls-alpn-01"]), acme)).toMatchObject({
      challenge: "tls-alpn-01",
      challengePort: 443,
    });
    expect(await certificateFromFlags(parse(["--acme-challenge", "http-01"]), acme)).toMatchObject({
      challengePort: 80,
    });
    // A port alone keeps the stored challenge.
    expect(await certificateFromFlags(parse(["--acme-challenge-port", "8443"]), acme)).toMatchObject({
      challenge: "http-01",
      challengePort: 8443,
    });
  });

  it("no flag: nothing to change", async () => {
    expect(await certificateFromFlags(parse([]), stored)).toBeNull();
  });

  it("refuses values the settings would refuse, naming the flag and the field", async () => {
    const acme = ["--certificate-mode", "acme", "--acme-hostname"];
    await expect(certificateFromFlags(parse([...acme, "nb_1 example"]), stored)).rejects.toThrow(
      '--acme-hostname "nb_1 example" is not a DNS name with at least two labels, such as nb1.westeurope.cloudapp.azure.com (certificate.hostname)',
    );
    await expect(certificateFromFlags(parse([...acme, "localhost"]), stored)).rejects.toThrow(
      /^--acme-hostname "localhost"/,
    );
    await expect(
      certificateFromFlags(
        parse([...acme, "nb.example.org", "--acme-directory", "http://acme.example/dir"]),
        stored,
      ),
    ).rejects.toThrow('--acme-directory "http://acme.example/dir" is not an https:// URL');
    await expect(
      certificateFromFlags(parse([...acme, "nb.example.org", "--acme-email", "ops at example"]), stored),
    ).rejects.toThrow('--acme-email "ops at example" is not an e-mail address');
    await expect(certificateFromFlags(parse(["--certificate-mode", "acme"]), stored)).rejects.toThrow(
      /^--acme-hostname is needed with --certificate-mode acme/,
    );
    await expect(
      certificateFromFlags(
        parse([...acme, "nb.example.org", "--acme-ca-file", path.join(dir, "missing.pem")]),
        stored,
      ),
    ).rejects.toThrow(/^--acme-ca-file: cannot read .*missing\.pem: ENOENT/);
    const notPem = path.join(dir, "not-pem.txt");
    await writeFile(notPem, "hello");
    await expect(
      certificateFromFlags(parse([...acme, "nb.example.org", "--acme-ca-file", notPem]), stored),
    ).rejects.toThrow(/^--acme-ca-file: .*not-pem\.txt holds no PEM certificate/);
  });

  it("refuses an unknown mode or challenge and a port out of range while parsing", () => {
    expect(() => parse(["--certificate-mode", "letsencrypt"])).toThrow(
      "--certificate-mode must be one of self-signed, acme, got 'letsencrypt'",
    );
    expect(() => parse(["--acme-challenge", "dns-01"])).toThrow(
      "--acme-challenge must be one of http-01, tls-alpn-01, got 'dns-01'",
    );
    expect(() => parse(["--acme-challenge-port", "70000"])).toThrow(
      "--acme-challenge-port must be an integer from 1 to 65535, got '70000'",
    );
  });

  it("the real `up` refuses a bad flag with exit 2 before it writes DIR/agent.json", async () => {
    const dataDir = path.join(dir, "agent-data");
    const result = await agentCli([
      ...["up", "--data-dir", dataDir, "--certificate-mode", "acme"],
      ...["--acme-hostname", "nb.example.org", "--acme-directory", "ftp://acme.example/dir"],
    ]);
    expect(result.code, result.stderr).toBe(2);
    expect(result.stderr).toContain('--acme-directory "ftp://acme.example/dir" is not an https:// URL');
    expect(existsSync(dataPaths(dataDir).settingsFile)).toBe(false);
  });
});
