/**
 * The `acme` part: how long an ACME-configured machine serves its self-signed certificate before
 * the one from its CA. `nbfleet server` (its own process, local provider: real bootstrap, the
 * bundled agent, Debian's Jupyter) with Debian's pebble on loopback as its ACME directory
 * (HTTP-01 validated for real against the agent's own answer through pebble's test DNS;
 * PEBBLE_VA_NOSLEEP, as pebble.ts starts it). Machines are created one after another (each
 * deleted before the next, so one issuance at a time holds the challenge port); for each, the
 * bench probes the notebook's TLS port every 20 ms from the moment the provider names it:
 *
 *   first up    = the first GET /api answering 200, whatever it was served over;
 *   ACME served = the first GET /api answering 200 over a chain that verifies against pebble's
 *                 root alone for the machine's name.
 *
 * The figure is ACME served − first up: how long the notebook answered over its self-signed
 * certificate. It is 0 for a machine whose issuance (started by the agent's first check, right
 * after it starts Jupyter) ends before Jupyter first answers — the restart onto the new pair
 * then happens before anyone could connect; the rounds that saw the self-signed certificate
 * are counted; answers over any other certificate (neither self-signed nor verifying) are
 * counted with why. Checked for each (the bench fails otherwise): the machine ends serving pebble's chain for its name, and the API shows
 * issuer acme with a valid chain and the fingerprint the probe saw.
 */
import { randomBytes } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { VmView } from "@nbfleet/shared";
import { dataPaths } from "@nbfleet/shared/agent-data";
import {
  type ControllerProcess,
  api,
  startControllerProcess,
  stopControllerProcess,
} from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { type Pebble, startPebble } from "@nbfleet/testkit/pebble";
import { freePort } from "@nbfleet/testkit/ports";
import { fingerprintHex, tlsProbe } from "@nbfleet/testkit/tls-probe";
import { waitFor } from "@nbfleet/testkit/wait";
import { type Spread, spreadOf } from "./stats.js";

/** Connected, the notebook running, no failing check (a busy machine may warn about load). */
const serving = (v: VmView) =>
  v.agent.status === "connected" &&
  v.notebook.state === "running" &&
  v.health.checks.length > 0 &&
  v.health.checks.every((c) => c.status !== "fail");

export interface AcmeBenchOptions {
  /** Machines created one after another. */
  vms: number;
}

export interface AcmeRound {
  name: string;
  /** POST /v1/vms until the notebook first answered. */
  createToFirstUpMs: number;
  /** POST /v1/vms until the ACME chain was served. */
  createToAcmeMs: number;
  /** First up until the ACME chain was served (0: ACME was the first answer): the figure. */
  selfSignedToAcmeMs: number;
  /** Whether the notebook answered over its self-signed certificate before. */
  selfSignedSeen: boolean;
  /** Longest run of failed probes between the first answer and the ACME chain. */
  longestGapMs: number;
  /** Longest run of failed probes after the ACME chain was first served, until settled. */
  gapAfterAcmeMs: number;
  /**
   * Answers over a certificate neither self-signed nor verifying against pebble's root for the
   * name (each: why verification failed, and the served certificate's issuer).
   */
  unverifiable: string[];
  /** ACME served until the API showed it with every check passing. */
  settleMs: number;
  probes: number;
}

export interface AcmeBenchResult {
  rounds: AcmeRound[];
  selfSignedToAcme: Spread;
  createToFirstUp: Spread;
  createToAcme: Spread;
  longestGap: Spread;
  gapAfterAcme: Spread;
  /** The same for a self-signed machine made after each ACME one: POST until its first answer. */
  selfSignedCreateToFirstUp: Spread;
  probeIntervalMs: number;
  /** pebble's certificate lifetime as issued, days. */
  lifetimeDays: number;
}

const PROBE_INTERVAL_MS = 20;
const ROUND_TIMEOUT_MS = 300_000;
/** How long the machine is watched after it settled on its ACME certificate. */
const SETTLE_MS = 5000;

export async function runAcmeBench(options: AcmeBenchOptions): Promise<AcmeBenchResult> {
  if (!Number.isInteger(options.vms) || options.vms < 1)
    throw new Error(`--acme-vms must be ≥ 1, not ${options.vms}`);
  const names = Array.from({ length: options.vms }, (_, i) => `acme-${i + 1}`);
  const hostname = (name: string) => `${name}.bench.test`;
  const pebble: Pebble = await startPebble({ names: names.map(hostname) });
  const dataDir = makeDataDir("nbf-bench-acme-");
  const token = `nbf_${randomBytes(24).toString("base64url")}`;
  let controller: ControllerProcess | undefined;
  try {
    const root = await pebble.rootPem();
    controller = await startControllerProcess(dataDir, await freePort(), token, {
      NBFLEET_LOG_LEVEL: "error",
      NBFLEET_ACME_DIRECTORY: pebble.directoryUrl,
      NBFLEET_ACME_CA_FILE: pebble.caFile,
      NBFLEET_ACME_CHALLENGE: "http-01",
      NBFLEET_ACME_CHALLENGE_PORT: String(pebble.httpPort),
    });
    const call = api(controller);
    const rounds: AcmeRound[] = [];
    let lifetimeDays = Number.NaN;
    const baseline: number[] = [];
    const remove = async (name: string) => {
      const deleted = await call("DELETE", `/v1/vms/${name}`);
      if (deleted.status >= 300) throw new Error(`DELETE /v1/vms/${name}: ${deleted.status}`);
      await waitFor(
        `${name} deleted`,
        async () => (await call("GET", `/v1/vms/${name}`)).status === 404,
        120_000,
      );
    };
    for (const name of names) {
      const round = await measureOne(call, name, hostname(name), root).catch(async (error: Error) => {
        throw new Error(`${error.message}\npebble: ${pebble.log().slice(-1500)}`);
      });
      rounds.push(round.round);
      lifetimeDays = round.lifetimeDays;
      await remove(name);
      const plain = `plain-${name}`;
      baseline.push(await measureSelfSigned(call, plain, dataDir));
      await remove(plain);
    }
    return {
      rounds,
      selfSignedToAcme: spreadOf(rounds.map((r) => r.selfSignedToAcmeMs)),
      createToFirstUp: spreadOf(rounds.map((r) => r.createToFirstUpMs)),
      createToAcme: spreadOf(rounds.map((r) => r.createToAcmeMs)),
      longestGap: spreadOf(rounds.map((r) => r.longestGapMs)),
      gapAfterAcme: spreadOf(rounds.map((r) => r.gapAfterAcmeMs)),
      selfSignedCreateToFirstUp: spreadOf(baseline),
      probeIntervalMs: PROBE_INTERVAL_MS,
      lifetimeDays,
    };
  } finally {
    // A failed round leaves its machine: its agent and notebook would outlive the data dir.
    if (controller) await removeLeftovers(api(controller), names);
    if (controller) await stopControllerProcess(controller);
    await pebble.remove();
    await rm(dataDir, { recursive: true, force: true });
  }
}

type Call = ReturnType<typeof api>;

async function removeLeftovers(call: Call, names: string[]): Promise<void> {
  for (const name of names.flatMap((n) => [n, `plain-${n}`])) {
    try {
      if ((await call("GET", `/v1/vms/${name}`)).status !== 200) continue;
      await call("DELETE", `/v1/vms/${name}`);
      await waitFor(
        `${name} deleted`,
        async () => (await call("GET", `/v1/vms/${name}`)).status === 404,
        60_000,
      );
    } catch (error) {
      console.error(`bench acme: could not delete ${name}: ${(error as Error).message}`);
    }
  }
}

async function measureOne(
  call: Call,
  name: string,
  hostname: string,
  root: string,
): Promise<{ round: AcmeRound; lifetimeDays: number }> {
  const view = async () => {
    const { status, body } = await call<VmView>("GET", `/v1/vms/${name}`);
    if (status !== 200) throw new Error(`GET /v1/vms/${name}: ${status} ${JSON.stringify(body)}`);
    return body;
  };
  const t0 = performance.now();
  const created = await call("POST", "/v1/vms", { name, certificate: { mode: "acme", hostname } });
  if (created.status !== 201)
    throw new Error(`POST /v1/vms: ${created.status} ${JSON.stringify(created.body)}`);
  const url = await waitFor(
    `${name}'s notebook URL`,
    async () => (await view()).notebook.url ?? undefined,
    120_000,
  );
  const port = Number(new URL(url).port);

  let firstUpAt: number | null = null;
  let selfSignedSeen = false;
  let acmeAt: number | null = null;
  let acmeFingerprint = "";
  let lastOkAt: number | null = null;
  let longestGapMs = 0;
  let probes = 0;
  const unverifiable: string[] = [];
  while (acmeAt === null) {
    if (performance.now() - t0 > ROUND_TIMEOUT_MS)
      throw new Error(
        `${name}: no ACME certificate served within ${ROUND_TIMEOUT_MS / 1000} s (answered before: ${firstUpAt !== null}): ${JSON.stringify(await view())}`,
      );
    const startedAt = performance.now();
    const served = await probe(port, hostname, root);
    probes += 1;
    if (served.kind === "other") unverifiable.push(served.why);
    if (served.kind === "acme") {
      acmeAt = startedAt;
      acmeFingerprint = served.fingerprint;
    } else if (served.kind === "self-signed") {
      selfSignedSeen = true;
    }
    if (served.kind !== "down") {
      firstUpAt ??= startedAt;
      if (lastOkAt !== null) longestGapMs = Math.max(longestGapMs, startedAt - lastOkAt);
      lastOkAt = startedAt;
    }
    if (acmeAt === null) await sleep(Math.max(0, PROBE_INTERVAL_MS - (performance.now() - startedAt)));
  }

  // Then until the machine has settled on it (the API reports it with every check passing) and
  // for SETTLE_MS more: an answer over anything else fails the bench, a stretch without answer
  // (a restart after the ACME chain was first served) is measured.
  const acmeFingerprintSeen = acmeFingerprint;
  let settled: VmView | null = null;
  let settledAt = Number.POSITIVE_INFINITY;
  let lastAcmeOkAt = acmeAt;
  let gapAfterAcmeMs = 0;
  let nextViewAt = 0;
  while (performance.now() < settledAt + SETTLE_MS) {
    if (performance.now() - acmeAt > ROUND_TIMEOUT_MS)
      throw new Error(`${name}: not settled on its ACME certificate: ${JSON.stringify(await view())}`);
    const startedAt = performance.now();
    const served = await probe(port, hostname, root);
    probes += 1;
    if (served.kind === "acme") {
      if (served.fingerprint !== acmeFingerprintSeen)
        throw new Error(`${name}: a second ACME certificate served without being asked for`);
      gapAfterAcmeMs = Math.max(gapAfterAcmeMs, startedAt - lastAcmeOkAt);
      lastAcmeOkAt = startedAt;
    } else if (served.kind === "other") {
      unverifiable.push(served.why);
    } else if (served.kind !== "down") {
      throw new Error(`${name}: served a ${served.kind} certificate again after pebble's`);
    }
    if (settled === null && startedAt >= nextViewAt) {
      nextViewAt = startedAt + 250;
      const v = await view();
      const cert = v.notebook.certificate;
      if (
        cert?.issuer?.kind === "acme" &&
        fingerprintHex(cert.fingerprintSha256) === acmeFingerprintSeen &&
        serving(v)
      ) {
        settled = v;
        settledAt = performance.now();
      }
    }
    await sleep(Math.max(0, PROBE_INTERVAL_MS - (performance.now() - startedAt)));
  }
  if (lastAcmeOkAt < settledAt)
    throw new Error(`${name}: not answering over its ACME certificate at the end`);
  const cert = settled!.notebook.certificate!;
  if (cert.chainValid !== true || !cert.subjectAltNames.includes(`DNS:${hostname}`))
    throw new Error(`${name}: the API shows ${JSON.stringify(cert)}`);
  return {
    round: {
      name,
      createToFirstUpMs: firstUpAt! - t0,
      createToAcmeMs: acmeAt - t0,
      selfSignedToAcmeMs: acmeAt - firstUpAt!,
      selfSignedSeen,
      longestGapMs,
      gapAfterAcmeMs,
      unverifiable,
      settleMs: settledAt - acmeAt,
      probes,
    },
    lifetimeDays: (Date.parse(cert.notAfter) - Date.parse(cert.notBefore)) / 86_400_000,
  };
}

/**
 * POST /v1/vms (self-signed) until its notebook first answers 200 over its own certificate
 * (pinned: its cert.pem trusted alone).
 */
async function measureSelfSigned(call: Call, name: string, dataDir: string): Promise<number> {
  const certFile = dataPaths(path.join(dataDir, "sandboxes", name, "agent")).certFile;
  const t0 = performance.now();
  const created = await call("POST", "/v1/vms", { name });
  if (created.status !== 201)
    throw new Error(`POST /v1/vms: ${created.status} ${JSON.stringify(created.body)}`);
  const url = await waitFor(
    `${name}'s notebook URL`,
    async () => (await call<VmView>("GET", `/v1/vms/${name}`)).body.notebook.url ?? undefined,
    120_000,
  );
  const port = Number(new URL(url).port);
  for (;;) {
    const startedAt = performance.now();
    if (startedAt - t0 > ROUND_TIMEOUT_MS)
      throw new Error(`${name}: no notebook answer within ${ROUND_TIMEOUT_MS / 1000} s`);
    const own = await readFile(certFile, "utf8").catch(() => null);
    if (
      own !== null &&
      (await tlsProbe({ port, servername: "localhost", ca: own, timeoutMs: 5000 })).status === 200
    )
      return startedAt - t0;
    await sleep(Math.max(0, PROBE_INTERVAL_MS - (performance.now() - startedAt)));
  }
}

type Served =
  | { kind: "down" }
  | { kind: "self-signed" | "acme"; fingerprint: string }
  | { kind: "other"; fingerprint: string; why: string };

/** TLS errors that mean the server answered over a self-signed certificate. */
const SELF_SIGNED_CODES = new Set(["DEPTH_ZERO_SELF_SIGNED_CERT", "SELF_SIGNED_CERT_IN_CHAIN"]);
/** TLS errors that mean it answered over some other certificate `root` does not vouch for. */
const UNVERIFIED_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
]);

/**
 * One verified GET /api (pebble's root alone, for `hostname`): `acme` when it answers 200,
 * `self-signed` when the handshake meets a self-signed certificate, `other` over any other
 * certificate the root does not vouch for, `down` otherwise. One connection decides it, so a
 * restart between two requests cannot mix two answers; nothing is accepted unverified.
 */
async function probe(port: number, hostname: string, root: string): Promise<Served> {
  const answer = await tlsProbe({ port, servername: hostname, ca: root, timeoutMs: 5000 });
  if (answer.status === 200) return { kind: "acme", fingerprint: answer.fingerprint ?? "" };
  if (answer.error && SELF_SIGNED_CODES.has(answer.error)) return { kind: "self-signed", fingerprint: "" };
  if (answer.error && UNVERIFIED_CODES.has(answer.error))
    return { kind: "other", fingerprint: "", why: answer.error };
  return { kind: "down" };
}
