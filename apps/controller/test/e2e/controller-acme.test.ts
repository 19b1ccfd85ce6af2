import type { ChildProcess } from "node:child_process";
/**
 * The controller's own certificate from a real ACME server (Debian's pebble): `nbfleet server
 * --acme-domain` comes up on a temporary self-signed certificate, answers pebble's TLS-ALPN-01
 * validation on its own listening port (pebble's tlsPort is the controller's port; its DNS says
 * 127.0.0.1), and serves the issued chain without a restart; a client trusting only pebble's root
 * verifies it fully. With 60 s certificates it renews by itself while a client polling every
 * 100 ms sees no failure; with pebble stopped it keeps serving, says why (/healthz, log, event)
 * and succeeds by itself once pebble is back.
 */
import { X509Certificate } from "node:crypto";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import path from "node:path";
import { connect as tlsConnect } from "node:tls";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { type Pebble, startPebble } from "@nbfleet/testkit/pebble";
import { freePort } from "@nbfleet/testkit/ports";
import { captureOutput, spawnCli, stopChild } from "@nbfleet/testkit/processes";
import { makeTestCa } from "@nbfleet/testkit/test-ca";
import { waitFor } from "@nbfleet/testkit/wait";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OwnCertificateStatus } from "../../src/tls/acme/own-certificate.js";

const DOMAIN = "ctl.acme.test";
const TOKEN = "acme-test-admin-token-0123456789";

let pebble: Pebble;
let port: number;
let dataDir: string;
let root: string;
let controller: ChildProcess;
let output: () => string;

beforeAll(async () => {
  port = await freePort();
  // pebble validates TLS-ALPN-01 on tlsPort: the controller's own listening port.
  pebble = await startPebble({ names: [DOMAIN], tlsPort: port, certificateValiditySec: 60 });
  root = await pebble.rootPem();
  dataDir = makeDataDir("nbf-ctl-acme-");
  const rootFile = path.join(dataDir, "pebble-root.pem");
  writeFileSync(rootFile, root);
  controller = spawnCli(
    [
      "server",
      "--listen",
      `127.0.0.1:${port}`,
      "--data-dir",
      dataDir,
      "--acme-domain",
      DOMAIN,
      "--tls-ca",
      rootFile,
    ],
    {
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        NBFLEET_ADMIN_TOKEN: TOKEN,
        NBFLEET_LOG_LEVEL: "info",
        NBFLEET_ACME_DIRECTORY: pebble.directoryUrl,
        NBFLEET_ACME_CA_FILE: pebble.caFile,
        NBFLEET_ACME_EMAIL: "ops@example.com",
      },
    },
  );
  output = captureOutput(controller);
});

afterAll(async () => {
  if (controller) await stopChild(controller, "SIGTERM", 10_000);
  await pebble?.remove();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

interface Handshake {
  authorized: boolean;
  error?: string;
  issuer?: string;
  fingerprint?: string;
  alpn?: string | false | null;
}

/** A TLS handshake with the controller as `servername`, trusting only `ca`. */
function handshake(ca: string, options: { servername?: string; alpn?: string[] } = {}): Promise<Handshake> {
  return new Promise((resolve) => {
    const socket = tlsConnect(
      {
        host: "127.0.0.1",
        port,
        servername: options.servername ?? DOMAIN,
        ca,
        rejectUnauthorized: false,
        ...(options.alpn ? { ALPNProtocols: options.alpn } : {}),
      },
      () => {
        const peer = socket.getPeerCertificate();
        resolve({
          authorized: socket.authorized,
          ...(socket.authorizationError ? { error: String(socket.authorizationError) } : {}),
          issuer: String(peer.issuer?.CN),
          fingerprint: peer.fingerprint256,
          alpn: socket.alpnProtocol,
        });
        socket.destroy();
      },
    );
    socket.setTimeout(10_000, () => socket.destroy(new Error("handshake timed out")));
    socket.on("error", (error) => resolve({ authorized: false, error: error.message }));
  });
}

/** GET /healthz over fully verified TLS (pebble's root, the domain's name). */
function healthz(ca = root): Promise<{ status: number; body: { certificate?: OwnCertificateStatus } }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      { host: "127.0.0.1", port, servername: DOMAIN, path: "/healthz", ca, agent: false, timeout: 5000 },
      (response) => {
        let text = "";
        response.on("data", (chunk) => {
          text += chunk;
        });
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("no answer within 5 s")));
    req.on("error", reject);
    req.end();
  });
}

function certificateEvents(): Array<{ kind: string; level: string; message: string }> {
  const db = new Database(path.join(dataDir, "nbfleet.sqlite"), { readonly: true });
  try {
    return db
      .prepare(
        "select kind, level, message from events where kind like 'controller.certificate%' order by id",
      )
      .all() as Array<{ kind: string; level: string; message: string }>;
  } finally {
    db.close();
  }
}

/** waitFor, failing with the controller's and pebble's output. */
async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => Promise<T | undefined | false>,
): Promise<T> {
  try {
    return await waitFor(
      what,
      async () => {
        if (controller.exitCode !== null) throw new Error(`nbfleet server exited (${controller.exitCode})`);
        return probe();
      },
      timeoutMs,
    );
  } catch (error) {
    throw new Error(
      `${(error as Error).message}\ncontroller:\n${output().slice(-6000)}\npebble:\n${pebble.log().slice(-3000)}`,
    );
  }
}

const mode = (file: string) => statSync(file).mode & 0o777;

describe("the controller's own certificate over ACME (pebble)", () => {
  it("comes up on a temporary certificate, then serves pebble's chain, verified against pebble's root alone", async () => {
    const served = await until("pebble's certificate served", 90_000, async () => {
      const result = await handshake(root);
      return result.authorized ? result : undefined;
    });
    expect(served.issuer).toMatch(/^Pebble Intermediate CA/);
    expect(output()).toContain(`serving a temporary self-signed certificate for ${DOMAIN}`);
    // pebble really validated: it looked the name up and connected to this port for acme-tls/1.
    expect(pebble.dns.queries()).toContain(`A ${DOMAIN}`);

    const { status, body } = await healthz();
    expect(status).toBe(200);
    expect(body.certificate).toMatchObject({
      source: "acme",
      domain: DOMAIN,
      issuer: { kind: "acme", name: expect.stringMatching(/^Pebble Intermediate CA/) },
      daysLeft: 0,
      directoryUrl: pebble.directoryUrl,
      failure: null,
    });
    expect(Date.parse(body.certificate!.notAfter) - Date.now()).toBeLessThanOrEqual(61_000);

    // Kept in the data dir, 0600 in a 0700 folder, the served chain and its key on disk.
    const tlsDir = path.join(dataDir, "tls");
    expect(mode(tlsDir)).toBe(0o700);
    for (const file of ["acme-account-key.pem", "acme-cert.pem", "acme-key.pem"]) {
      expect(mode(path.join(tlsDir, file))).toBe(0o600);
    }
    const onDisk = new X509Certificate(readFileSync(path.join(tlsDir, "acme-cert.pem")));
    expect(onDisk.subjectAltName).toBe(`DNS:${DOMAIN}`);

    // Full verification fails for another CA or another name.
    const other = await makeTestCa("not pebble");
    expect((await handshake(other.caPem)).authorized).toBe(false);
    const wrongName = await handshake(root, { servername: "other.acme.test" });
    expect(wrongName.authorized).toBe(false);
    expect(wrongName.error).toContain("ERR_TLS_CERT_ALTNAME_INVALID");
    // Browsers offer h2 and http/1.1: they get http/1.1. Asking for acme-tls/1 with no challenge
    // pending gets no challenge certificate: the handshake is refused.
    expect(await handshake(root, { alpn: ["h2", "http/1.1"] })).toMatchObject({
      authorized: true,
      alpn: "http/1.1",
    });
    const sneaky = await handshake(root, { alpn: ["acme-tls/1"] });
    expect(sneaky.authorized).toBe(false);
    expect(sneaky.error).toMatch(/no application protocol/);
  });

  it("renews 60 s certificates by itself, swapping the chain without dropping a client polling every 100 ms", async () => {
    const first = (await healthz()).body.certificate!;
    let polls = 0;
    const failures: string[] = [];
    let renewed: OwnCertificateStatus | undefined;
    const deadline = Date.now() + 90_000;
    while (!renewed && Date.now() < deadline) {
      try {
        const { status, body } = await healthz();
        polls += 1;
        if (status !== 200) failures.push(`HTTP ${status}`);
        if (body.certificate && body.certificate.fingerprintSha256 !== first.fingerprintSha256) {
          renewed = body.certificate;
        }
      } catch (error) {
        failures.push((error as Error).message);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(renewed, `not renewed within 90 s:\n${output()}`).toBeDefined();
    expect(failures).toEqual([]);
    expect(polls).toBeGreaterThan(50);
    expect(Date.parse(renewed!.notAfter)).toBeGreaterThan(Date.parse(first.notAfter));
    expect(renewed!.lastIssuedAt).not.toBe(first.lastIssuedAt);
    // The same process served both: no restart.
    expect(controller.exitCode).toBeNull();
    await until(
      "two certificate_issued events",
      10_000,
      async () =>
        certificateEvents().filter((event) => event.kind === "controller.certificate_issued").length >= 2,
    );
  });

  it("pebble stopped: keeps serving its certificate, says why, and succeeds by itself once pebble is back", async () => {
    const before = (await healthz()).body.certificate!;
    await pebble.stop();
    const failed = await until("a failure in /healthz", 60_000, async () => {
      const { body } = await healthz();
      return body.certificate?.failure ? body.certificate : undefined;
    });
    expect(failed.failure!.message).toMatch(/cannot reach https:\/\/127\.0\.0\.1:\d+\/dir: .*ECONNREFUSED/);
    expect(failed.failure!.message).toContain("the current certificate was kept");
    expect(Date.parse(failed.failure!.nextAttemptAt)).toBeGreaterThan(Date.parse(failed.failure!.at));
    // Still the certificate it had, still verified.
    expect(failed.fingerprintSha256).toBe(before.fingerprintSha256);
    expect((await handshake(root)).authorized).toBe(true);
    expect(output()).toContain(`ACME issuance of the controller's certificate for ${DOMAIN} failed`);
    await until("a certificate_failed event", 10_000, async () =>
      certificateEvents().some((event) => event.kind === "controller.certificate_failed"),
    );
    expect(certificateEvents().find((event) => event.kind === "controller.certificate_failed")).toMatchObject(
      {
        level: "warn",
        message: expect.stringContaining("ECONNREFUSED"),
      },
    );

    // Back (pebble makes a new root at every start): the next retry succeeds without anyone.
    await pebble.start();
    const newRoot = await pebble.rootPem();
    const recovered = await until("a new certificate after pebble is back", 60_000, async () => {
      const { body } = await healthz(`${root}\n${newRoot}`);
      const certificate = body.certificate;
      return certificate &&
        certificate.failure === null &&
        certificate.fingerprintSha256 !== before.fingerprintSha256
        ? certificate
        : undefined;
    });
    expect(recovered.issuer.kind).toBe("acme");
    expect((await handshake(newRoot)).authorized).toBe(true);
  });
});
