/**
 * A real ACME server for tests: Debian's `pebble` 2.4 on loopback ports, in a temp dir of its
 * own with a generated TLS pair (the package ships none) and config, removed by `remove()`.
 * Challenges are validated for real unless `alwaysValid`: pebble resolves names through a test
 * DNS responder (test-dns.ts) that answers 127.0.0.1, and connects to `httpPort` (HTTP-01) and
 * `tlsPort` (TLS-ALPN-01) there, so the client under test answers on those loopback ports.
 *
 * Each start makes a new issuing root (pebble keeps nothing); `rootPem()` fetches the current
 * one from the management port. One pebble per test file: tests stop it or change its DNS.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, request } from "undici";
import { freePort } from "./ports.js";
import { captureOutput, hasExited, stopChild } from "./processes.js";
import { type TestCa, makeTestCa } from "./test-ca.js";
import { type TestDns, startTestDns } from "./test-dns.js";

export const PEBBLE_BIN = "/usr/bin/pebble";

export interface PebbleOptions {
  /** Names the test DNS answers with 127.0.0.1 from the start (more with `dns.add`). */
  names?: string[];
  /** PEBBLE_VA_ALWAYS_VALID=1: every challenge passes without a request to the client. */
  alwaysValid?: boolean;
  /** Lifetime of issued certificates, seconds (pebble's default is five years). */
  certificateValiditySec?: number;
  /** Ports pebble validates HTTP-01 and TLS-ALPN-01 on (default: free ones). */
  httpPort?: number;
  tlsPort?: number;
  /** How long start() waits for the directory to answer. */
  startTimeoutMs?: number;
}

export interface Pebble {
  /** The ACME directory URL (https, served with `caPem`'s certificate). */
  readonly directoryUrl: string;
  /** The CA of pebble's own TLS (ACME and management ports): what a client trusts to reach it. */
  readonly caPem: string;
  /** A file holding `caPem`, for settings that take a path. */
  readonly caFile: string;
  readonly httpPort: number;
  readonly tlsPort: number;
  readonly dns: TestDns;
  /** The root that signs issued certificates now (changes on every start). */
  rootPem(): Promise<string>;
  stop(): Promise<void>;
  /** Starts a stopped pebble again on the same ports (with a new root). */
  start(): Promise<void>;
  /** Stops pebble and the DNS responder and deletes the temp dir. */
  remove(): Promise<void>;
  /** pebble's output so far (for a failing test's message). */
  log(): string;
}

export async function startPebble(options: PebbleOptions = {}): Promise<Pebble> {
  if (!existsSync(PEBBLE_BIN)) {
    throw new Error(
      `pebble is not installed (${PEBBLE_BIN} is missing): run tools/ensure-system-packages.sh as root`,
    );
  }
  const dir = mkdtempSync(join(tmpdir(), "nbf-pebble-"));
  const ca: TestCa = await makeTestCa("nbfleet pebble TLS CA");
  const pair = await ca.issueServer();
  const caFile = join(dir, "tls-ca.pem");
  writeFileSync(caFile, ca.caPem);
  writeFileSync(join(dir, "cert.pem"), pair.certPem);
  writeFileSync(join(dir, "key.pem"), pair.keyPem, { mode: 0o600 });

  const [listenPort, managementPort] = [await freePort(), await freePort()];
  const httpPort = options.httpPort ?? (await freePort());
  const tlsPort = options.tlsPort ?? (await freePort());
  const config = {
    pebble: {
      listenAddress: `127.0.0.1:${listenPort}`,
      managementListenAddress: `127.0.0.1:${managementPort}`,
      certificate: join(dir, "cert.pem"),
      privateKey: join(dir, "key.pem"),
      httpPort,
      tlsPort,
      ocspResponderURL: "",
      externalAccountBindingRequired: false,
      ...(options.certificateValiditySec
        ? { certificateValidityPeriod: options.certificateValiditySec }
        : {}),
    },
  };
  const configFile = join(dir, "pebble-config.json");
  writeFileSync(configFile, JSON.stringify(config, null, 2));

  const dns = await startTestDns(options.names ?? []);
  const dispatcher = new Agent({ connect: { ca: ca.caPem } });
  const directoryUrl = `https://127.0.0.1:${listenPort}/dir`;
  const env = {
    ...process.env,
    PEBBLE_VA_NOSLEEP: "1",
    ...(options.alwaysValid ? { PEBBLE_VA_ALWAYS_VALID: "1" } : {}),
  };
  let child: ChildProcess | undefined;
  let output = () => "";
  let previousOutput = "";

  const get = async (url: string): Promise<{ status: number; body: string }> => {
    const response = await request(url, { dispatcher, headersTimeout: 5000, bodyTimeout: 5000 });
    return { status: response.statusCode, body: await response.body.text() };
  };

  const start = async () => {
    if (child && !hasExited(child)) return;
    previousOutput += output();
    child = spawn(PEBBLE_BIN, ["-config", configFile, "-dnsserver", dns.address, "-strict=false"], {
      cwd: dir,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    output = captureOutput(child);
    const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
    let last: unknown;
    for (;;) {
      if (hasExited(child)) throw new Error(`pebble exited at start (${child.exitCode}):\n${output()}`);
      try {
        if ((await get(directoryUrl)).status === 200) return;
      } catch (error) {
        last = error;
      }
      if (Date.now() > deadline) {
        await stopChild(child, "SIGKILL");
        throw new Error(`pebble did not serve ${directoryUrl} in time (${String(last)}):\n${output()}`);
      }
      await sleep(50);
    }
  };
  const stop = async () => {
    if (child) await stopChild(child, "SIGTERM", 5000);
  };

  try {
    await start();
  } catch (error) {
    await dns.close();
    await dispatcher.close();
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    directoryUrl,
    caPem: ca.caPem,
    caFile,
    httpPort,
    tlsPort,
    dns,
    async rootPem() {
      const { status, body } = await get(`https://127.0.0.1:${managementPort}/roots/0`);
      if (status !== 200 || !body.includes("BEGIN CERTIFICATE")) {
        throw new Error(`pebble's management port gave ${status} for /roots/0: ${body.slice(0, 200)}`);
      }
      return body;
    },
    stop,
    start,
    async remove() {
      await stop();
      await dns.close();
      await dispatcher.close();
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => previousOutput + output(),
  };
}
