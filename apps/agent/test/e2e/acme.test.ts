/**
 * The agent's ACME module against a real ACME server (Debian's pebble) with challenge
 * validation on: pebble resolves the machine's name through the test DNS responder (127.0.0.1)
 * and connects to the agent's own HTTP-01 or TLS-ALPN-01 answer. The issued chain is then
 * served and verified by a client trusting only pebble's root; refusals keep the old pair.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { createServer as createTlsServer, connect as tlsConnect } from "node:tls";
import { agentCli } from "@nbfleet/testkit/agent-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { type Pebble, startPebble } from "@nbfleet/testkit/pebble";
import { freePort } from "@nbfleet/testkit/ports";
import { makeTestCa } from "@nbfleet/testkit/test-ca";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AcmeSettings, obtainCertificate } from "../../src/acme/obtain.js";
import { dataPaths } from "../../src/config/paths.js";
import { AgentError } from "../../src/errors.js";
import { ensureCertificate } from "../../src/tls/ensure.js";

let pebble: Pebble;
const dirs: string[] = [];

beforeAll(async () => {
  pebble = await startPebble({ names: ["nb1.acme.test", "nb2.acme.test", "nb4.acme.test", "nb5.acme.test"] });
});
afterAll(async () => {
  await pebble?.remove();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A data dir whose notebook already serves the agent's self-signed certificate. */
async function machine() {
  const dir = makeDataDir("nbf-acme-");
  dirs.push(dir);
  const paths = dataPaths(dir);
  await ensureCertificate(paths, { hostnames: ["localhost"] });
  return paths;
}

function settings(hostname: string, overrides: Partial<AcmeSettings> = {}): AcmeSettings {
  return {
    directoryUrl: pebble.directoryUrl,
    email: "ops@example.com",
    hostname,
    caFile: pebble.caFile,
    challenge: "http-01",
    challengePort: pebble.httpPort,
    ...overrides,
  };
}

/** Serves `cert`/`key` on loopback and connects as `servername`, trusting only `ca`. */
async function handshake(certPem: string, keyPem: string, servername: string, ca: string) {
  const server = createTlsServer({ cert: certPem, key: keyPem }, (socket) => socket.end("hello\n"));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<{ authorized: boolean; error?: string; peerIssuer?: string }>((resolve) => {
      const socket = tlsConnect(
        { host: "127.0.0.1", port, servername, ca, rejectUnauthorized: false },
        () => {
          const peer = socket.getPeerCertificate(true);
          resolve({
            authorized: socket.authorized,
            ...(socket.authorizationError ? { error: String(socket.authorizationError) } : {}),
            peerIssuer: String(peer.issuer?.CN),
          });
          socket.destroy();
        },
      );
      socket.setTimeout(10_000, () => socket.destroy(new Error("handshake timed out")));
      socket.on("error", (error) => resolve({ authorized: false, error: error.message }));
    });
  } finally {
    server.close();
  }
}

const mode = (file: string) => statSync(file).mode & 0o777;

describe("ACME issuance against pebble", () => {
  it("HTTP-01: pebble validates the agent's answer, the chain is installed and verifies against pebble's root", async () => {
    const paths = await machine();
    const before = readFileSync(paths.certFile, "utf8");

    const result = await obtainCertificate({
      settings: settings("nb1.acme.test"),
      paths,
      challengeHost: "127.0.0.1",
      timeoutMs: 60_000,
    });

    // Validation really happened: pebble asked the test DNS for the name.
    expect(pebble.dns.queries()).toContain("A nb1.acme.test");
    const certPem = readFileSync(paths.certFile, "utf8");
    const keyPem = readFileSync(paths.keyFile, "utf8");
    expect(certPem).not.toBe(before);
    expect(certPem.match(/BEGIN CERTIFICATE/g)?.length).toBeGreaterThanOrEqual(2); // leaf + intermediate
    expect(new X509Certificate(certPem).subjectAltName).toBe("DNS:nb1.acme.test");
    expect(result.info.subjectAltNames).toEqual(["DNS:nb1.acme.test"]);
    expect(result.info.selfSigned).toBe(false);
    expect(result.issuer).toMatch(/^Pebble Intermediate CA/);
    expect(mode(paths.keyFile)).toBe(0o600);
    expect(mode(paths.acmeAccountKey)).toBe(0o600);

    const root = await pebble.rootPem();
    const trusted = await handshake(certPem, keyPem, "nb1.acme.test", root);
    expect(trusted).toEqual({
      authorized: true,
      peerIssuer: expect.stringMatching(/^Pebble Intermediate CA/),
    });
    // The same chain is refused by a client that trusts something else, or asks for another name.
    const otherCa = await makeTestCa("not pebble");
    expect((await handshake(certPem, keyPem, "nb1.acme.test", otherCa.caPem)).authorized).toBe(false);
    const wrongName = await handshake(certPem, keyPem, "other.acme.test", root);
    expect(wrongName.authorized).toBe(false);
    expect(wrongName.error).toContain("ERR_TLS_CERT_ALTNAME_INVALID");
  });

  it("TLS-ALPN-01: the agent's acme-tls/1 answer validates too; the same account key is reused", async () => {
    const paths = await machine();
    const result = await obtainCertificate({
      settings: settings("nb2.acme.test", { challenge: "tls-alpn-01", challengePort: pebble.tlsPort }),
      paths,
      challengeHost: "127.0.0.1",
      timeoutMs: 60_000,
    });
    expect(result.info.subjectAltNames).toEqual(["DNS:nb2.acme.test"]);
    const certPem = readFileSync(paths.certFile, "utf8");
    const keyPem = readFileSync(paths.keyFile, "utf8");
    expect((await handshake(certPem, keyPem, "nb2.acme.test", await pebble.rootPem())).authorized).toBe(true);

    const keyBefore = readFileSync(paths.acmeAccountKey, "utf8");
    await obtainCertificate({
      settings: settings("nb2.acme.test", { challenge: "tls-alpn-01", challengePort: pebble.tlsPort }),
      paths,
      challengeHost: "127.0.0.1",
      timeoutMs: 60_000,
    });
    expect(readFileSync(paths.acmeAccountKey, "utf8")).toBe(keyBefore);
  });

  it("a challenge pebble cannot validate (the name does not resolve): the ACME problem is named, the old pair kept", async () => {
    const paths = await machine();
    const before = { cert: readFileSync(paths.certFile, "utf8"), key: readFileSync(paths.keyFile, "utf8") };
    const error = await obtainCertificate({
      settings: settings("nb3.acme.test"),
      paths,
      challengeHost: "127.0.0.1",
      timeoutMs: 60_000,
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(AgentError);
    const failure = error as AgentError;
    expect(failure.code).toBe("NBF_ACME_FAILED");
    expect(failure.details.problemType).toMatch(/^urn:ietf:params:acme:error:(dns|connection|unauthorized)$/);
    expect(failure.message).toContain(String(failure.details.problemType));
    expect(failure.message).toContain("nb3.acme.test");
    expect(failure.message).toContain("the current certificate was kept");
    expect(readFileSync(paths.certFile, "utf8")).toBe(before.cert);
    expect(readFileSync(paths.keyFile, "utf8")).toBe(before.key);
  });

  it("nothing answers on the challenge port pebble validates: urn:ietf:params:acme:error:connection, old pair kept", async () => {
    const paths = await machine();
    const before = readFileSync(paths.certFile, "utf8");
    const error = (await obtainCertificate({
      // The agent answers on another port than the one pebble connects to.
      settings: settings("nb4.acme.test", { challengePort: await freePort() }),
      paths,
      challengeHost: "127.0.0.1",
      timeoutMs: 60_000,
    }).catch((caught: unknown) => caught)) as AgentError;
    expect(error.code).toBe("NBF_ACME_FAILED");
    expect(error.details.problemType).toBe("urn:ietf:params:acme:error:connection");
    expect(readFileSync(paths.certFile, "utf8")).toBe(before);
  });

  it("the ACME server's TLS is checked against certificate.caFile", async () => {
    const paths = await machine();
    const other = makeDataDir("nbf-acme-ca-");
    dirs.push(other);
    const wrongCa = `${other}/ca.pem`;
    writeFileSync(wrongCa, (await makeTestCa("not pebble's TLS CA")).caPem);
    const error = (await obtainCertificate({
      settings: settings("nb1.acme.test", { caFile: wrongCa }),
      paths,
      challengeHost: "127.0.0.1",
    }).catch((caught: unknown) => caught)) as AgentError;
    expect(error.code).toBe("NBF_ACME_FAILED");
    expect(error.message).toContain("TLS certificate is not trusted");
    expect(error.message).toContain(wrongCa);
  });

  it("pebble stopped: a clear error and the old pair kept; once pebble is back the same call succeeds", async () => {
    const paths = await machine();
    const before = readFileSync(paths.certFile, "utf8");
    await pebble.stop();
    try {
      const error = (await obtainCertificate({
        settings: settings("nb1.acme.test"),
        paths,
        challengeHost: "127.0.0.1",
        timeoutMs: 30_000,
      }).catch((caught: unknown) => caught)) as AgentError;
      expect(error.code).toBe("NBF_ACME_FAILED");
      expect(error.message).toMatch(/cannot reach https:\/\/127\.0\.0\.1:\d+\/dir: .*ECONNREFUSED/);
      expect(readFileSync(paths.certFile, "utf8")).toBe(before);
    } finally {
      await pebble.start();
    }
    const result = await obtainCertificate({
      settings: settings("nb1.acme.test"),
      paths,
      challengeHost: "127.0.0.1",
      timeoutMs: 60_000,
    });
    expect(result.info.subjectAltNames).toEqual(["DNS:nb1.acme.test"]);
    const certPem = readFileSync(paths.certFile, "utf8");
    // A restarted pebble has a new root: the new chain verifies against it.
    expect(
      (await handshake(certPem, readFileSync(paths.keyFile, "utf8"), "nb1.acme.test", await pebble.rootPem()))
        .authorized,
    ).toBe(true);
  });

  it("`nbfleet-agent certificate acme`: issues from the flags, again for the same account without an email; bad flags named", async () => {
    const paths = await machine();
    const args = [
      "certificate",
      "acme",
      "--data-dir",
      paths.dataDir,
      "--hostname",
      "nb5.acme.test",
      "--directory",
      pebble.directoryUrl,
      "--ca-file",
      pebble.caFile,
      "--challenge-port",
      String(pebble.httpPort),
      "--json",
    ];
    const fingerprints: string[] = [];
    for (let round = 0; round < 2; round++) {
      const run = await agentCli(args);
      expect(run.stderr).toBe("");
      expect(run.code).toBe(0);
      const printed = JSON.parse(run.stdout) as {
        subjectAltNames: string[];
        issuer: string;
        fingerprintSha256: string;
      };
      expect(printed.subjectAltNames).toEqual(["DNS:nb5.acme.test"]);
      expect(printed.issuer).toMatch(/^Pebble Intermediate CA/);
      fingerprints.push(printed.fingerprintSha256);
    }
    expect(fingerprints[1]).not.toBe(fingerprints[0]);
    expect(mode(paths.acmeAccountKey)).toBe(0o600);

    const bad = await agentCli([...args.slice(0, 4), "--hostname", "not a name", "--json"]);
    expect(bad.code).toBe(2);
    const refusal = JSON.parse(bad.stdout) as { ok: boolean; code: string; message: string };
    expect(refusal).toMatchObject({ ok: false, code: "NBF_INVALID_INPUT" });
    expect(refusal.message).toMatch(/certificate\.hostname.*not a name/);
  });
});
