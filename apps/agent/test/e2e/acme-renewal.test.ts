/**
 * Renewal without a person: pebble issues 30-second certificates; the renewer, ticking as the
 * agent's check loop would, replaces the self-signed pair and then renews the ACME one before
 * it expires, each time through a real `nbfleet-agent certificate acme` child. A TLS server
 * reloads the pair on each issuance while a client polls it every 100 ms trusting only
 * pebble's root: after the first issuance not one handshake fails.
 */
import { readFileSync, rmSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { type TLSSocket, connect, createServer } from "node:tls";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { type Pebble, startPebble } from "@nbfleet/testkit/pebble";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AcmeRenewer, type IssuedCertificate, issueInChild } from "../../src/acme/renewer.js";
import { saveSettings } from "../../src/config/load.js";
import { dataPaths } from "../../src/config/paths.js";
import { DEFAULT_SETTINGS } from "../../src/config/settings.js";
import { ensureCertificate } from "../../src/tls/ensure.js";
import { formatFingerprint } from "../../src/tls/fingerprint.js";

const NAME = "renew.acme.test";
const LIFETIME_SEC = 30;
let pebble: Pebble;
let dir: string;

beforeAll(async () => {
  pebble = await startPebble({ names: [NAME], certificateValiditySec: LIFETIME_SEC });
  dir = makeDataDir("nbf-acme-renew-");
});
afterAll(async () => {
  await pebble?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Poll {
  at: number;
  ok: boolean;
  fingerprint?: string;
  error?: string;
}

function poll(port: number, root: string): Promise<Poll> {
  const at = Date.now();
  return new Promise((resolve) => {
    const socket: TLSSocket = connect({ host: "127.0.0.1", port, servername: NAME, ca: root }, () => {
      resolve({ at, ok: true, fingerprint: formatFingerprint(socket.getPeerCertificate().fingerprint256) });
      socket.destroy();
    });
    socket.setTimeout(2000, () => socket.destroy(new Error("timed out")));
    socket.on("error", (error: NodeJS.ErrnoException) =>
      resolve({ at, ok: false, error: error.code ?? error.message }),
    );
  });
}

describe("ACME renewal", () => {
  it("renews a short-lived certificate before it expires, with no failed handshake", async () => {
    const paths = dataPaths(dir);
    await saveSettings(paths, {
      ...DEFAULT_SETTINGS,
      certificate: {
        mode: "acme",
        directoryUrl: pebble.directoryUrl,
        email: null,
        hostname: NAME,
        caFile: pebble.caFile,
        challenge: "http-01",
        challengePort: pebble.httpPort,
      },
    });
    await ensureCertificate(paths);
    const read = () => ({ cert: readFileSync(paths.certFile), key: readFileSync(paths.keyFile) });
    const server = createServer(read(), (socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;

    const issued: Array<IssuedCertificate & { at: number }> = [];
    const failures: string[] = [];
    // When each issuance started: the renewer's decision, apart from how long the child takes.
    const attempts: number[] = [];
    let current: IssuedCertificate | null = null;
    const renewer = new AcmeRenewer({
      dataDir: dir,
      hostname: NAME,
      issue: () => {
        attempts.push(Date.now());
        return issueInChild(dir);
      },
      onIssued: (certificate) => {
        server.setSecureContext(read());
        current = certificate;
        issued.push({ ...certificate, at: Date.now() });
      },
      onFailed: (failure) => failures.push(failure.message),
    });
    const ticker = setInterval(() => void renewer.tick(current), 250);
    const polls: Poll[] = [];
    let polling = true;
    const poller = (async () => {
      const root = await pebble.rootPem();
      while (polling) {
        if (issued.length > 0) polls.push(await poll(port, root));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    try {
      await waitFor("a first issuance and one renewal", async () => issued.length >= 2, 90_000);
      await waitFor("the client served the renewed certificate", async () =>
        polls.some((p) => p.fingerprint === issued[1]?.fingerprintSha256),
      );
    } finally {
      clearInterval(ticker);
      polling = false;
      await poller;
      server.close();
    }

    expect(failures).toEqual([]);
    const [first, second] = issued as [
      IssuedCertificate & { at: number },
      IssuedCertificate & { at: number },
    ];
    expect(first.subjectAltNames).toEqual([`DNS:${NAME}`]);
    expect(second.fingerprintSha256).not.toBe(first.fingerprintSha256);
    // The renewal started in its window (from 4/9 to 1/3 of the life left; the ticker runs every
    // 250 ms) and was done before the first certificate ran out, however long the child took on
    // a busy machine (the client's handshakes, below, would fail after that).
    const firstEnd = Date.parse(first.notAfter);
    const lifeMs = LIFETIME_SEC * 1000;
    expect(attempts).toHaveLength(2);
    const renewalStart = attempts[1]!;
    expect(renewalStart).toBeLessThan(firstEnd - lifeMs / 3 + 1000);
    expect(renewalStart).toBeGreaterThan(firstEnd - (lifeMs * 4) / 9 - 2000);
    expect(second.at).toBeLessThan(firstEnd);
    // The client saw both certificates, and never a failed handshake.
    expect(polls.filter((p) => !p.ok)).toEqual([]);
    expect(new Set(polls.map((p) => p.fingerprint))).toEqual(
      new Set([first.fingerprintSha256, second.fingerprintSha256]),
    );
    expect(polls.length).toBeGreaterThan(50);
  });
});
