/**
 * ACME through the controller, end to end: `nbfleet server` (local provider: sandboxes booted by
 * the real bootstrap, the agent from this checkout, Debian's Jupyter) with the run's pebble as
 * its ACME directory (HTTP-01 validated for real against the agent's own answer). A machine made
 * with `nbfleet vm create --certificate acme --hostname H` ends up serving pebble's chain for H,
 * which a client trusting only pebble's root verifies in full; the API, `vm ls
 * --cert-expiring-within` and `op run notebook.certificate` see and renew it; a self-signed
 * machine beside it stays self-signed. A machine whose name pebble cannot resolve keeps serving
 * its self-signed certificate with the tls check saying why, and gets its certificate by itself
 * once the name resolves.
 */
import { readFileSync, rmSync } from "node:fs";
import path from "node:path";
import type { CertificateInfo, VmView } from "@nbfleet/shared";
import { dataPaths } from "@nbfleet/shared/agent-data";
import { runCli } from "@nbfleet/testkit/cli";
import { tableRows } from "@nbfleet/testkit/cli-table";
import {
  type ControllerProcess,
  api,
  startControllerProcess,
  stopControllerProcess,
} from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { type SharedPebble, sharedPebble } from "@nbfleet/testkit/shared-pebble";
import { type TlsProbe, fingerprintHex, tlsProbe } from "@nbfleet/testkit/tls-probe";
import { servingButForLoad as healthy } from "@nbfleet/testkit/vm-serving";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const NAME = "nb1.acme.test";
/** Not in the test DNS until the test adds it: pebble cannot validate it before. */
const LATE_NAME = "late.vm-acme.test";
const TOKEN = "nbf_vm-acme-admin-token-0123456789";
const DAY_MS = 86_400_000;
/** Boot, first issuance, and (for the late machine) the agent's first retry, 30–60 s after a failure. */
const SLOW_MS = 240_000;

let pebble: SharedPebble;
let root: string;
let controller: ControllerProcess;
let dataDir: string;

beforeAll(async () => {
  pebble = await sharedPebble(NAME);
  root = await pebble.rootPem();
  dataDir = makeDataDir("nbf-vm-acme-");
  controller = await startControllerProcess(dataDir, await freePort(), TOKEN, {
    NBFLEET_ACME_DIRECTORY: pebble.directoryUrl,
    NBFLEET_ACME_CA_FILE: pebble.caFile,
    NBFLEET_ACME_CHALLENGE: "http-01",
    NBFLEET_ACME_CHALLENGE_PORT: String(pebble.httpPort),
  });
}, 240_000);

afterAll(async () => {
  if (controller) {
    for (const name of ["nb1", "plain", "late"]) {
      await api(controller)("DELETE", `/v1/vms/${name}`).catch(() => undefined);
    }
    await stopControllerProcess(controller);
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
}, 120_000);

const nbfleet = (...args: string[]) => runCli({ url: controller.url, adminToken: TOKEN }, ...args);
const vm = async (name: string) => (await api(controller)<VmView>("GET", `/v1/vms/${name}`)).body;

/** `probe` until it gives a value; on time-out the machine's last view and the logs say why. */
const waitVm = <T>(name: string, what: string, probe: (view: VmView) => T | undefined | false) =>
  waitFor(`${name}: ${what}`, async () => probe(await vm(name)), SLOW_MS).catch(async (error) => {
    throw new Error(
      `${(error as Error).message}\nlast view: ${JSON.stringify(await vm(name))}\ncontroller: ${controller
        .output()
        .slice(-2000)}\npebble: ${(await pebble.log()).slice(-2000)}`,
    );
  });

const servedAcme = (view: VmView, not?: string): CertificateInfo | undefined => {
  const cert = view.notebook.certificate;
  return cert?.issuer?.kind === "acme" && cert.fingerprintSha256 !== not ? cert : undefined;
};

/** GET /api on the machine's notebook as `servername`, verified against `ca` alone. */
function getApi(view: VmView, ca: string, servername: string): Promise<TlsProbe> {
  const port = view.notebook.port;
  if (!port) throw new Error(`${view.name} has no notebook port: ${JSON.stringify(view.notebook)}`);
  return tlsProbe({ port, servername, ca });
}

const hex = fingerprintHex;
const listed = async (...args: string[]) => {
  const run = await nbfleet("vm", "ls", ...args);
  expect(run.code, run.stderr).toBe(0);
  return run.stdout === "no machines\n" ? [] : tableRows(run.stdout).map((row) => row.NAME);
};

describe("ACME machines through the controller (pebble)", () => {
  it("issues, serves, lists and renews an ACME machine's certificate; a self-signed one beside it stays so", async () => {
    const created = await nbfleet(
      "--json",
      "vm",
      "create",
      "nb1",
      "--certificate",
      "acme",
      "--hostname",
      NAME,
      "--no-wait",
    );
    expect(created.code, created.stderr).toBe(0);
    expect(JSON.parse(created.stdout).vm.certificate).toEqual({ mode: "acme", hostname: NAME });
    const plainCreated = await nbfleet("vm", "create", "plain", "--no-wait");
    expect(plainCreated.code, plainCreated.stderr).toBe(0);

    const view = await waitVm(
      "nb1",
      "healthy, serving pebble's certificate",
      (v) => healthy(v) && servedAcme(v) && v,
    );
    const cert = view.notebook.certificate!;
    expect(view.certificate).toEqual({ mode: "acme", hostname: NAME });
    expect(cert.issuer).toEqual({ kind: "acme", name: "127.0.0.1" });
    expect(cert.selfSigned).toBe(false);
    expect(cert.chainValid).toBe(true);
    expect(cert.subjectAltNames).toContain(`DNS:${NAME}`);
    const daysLeft = Math.floor((Date.parse(cert.notAfter) - Date.now()) / DAY_MS);
    expect(cert.daysLeft).toBeGreaterThanOrEqual(daysLeft - 1);
    expect(cert.daysLeft).toBeLessThanOrEqual(daysLeft + 1);
    expect(cert.daysLeft).toBeLessThan(3649); // not a self-signed ten-year one

    // Full verification against pebble's root alone, for the machine's name — and only for it.
    const reached = await waitFor("nb1's notebook verified by pebble's root", async () => {
      const r = await getApi(await vm("nb1"), root, NAME);
      return r.status === 200 && r;
    });
    expect(reached.fingerprint).toBe(hex(cert.fingerprintSha256));
    expect((await getApi(view, root, "other.acme.test")).error).toBe("ERR_TLS_CERT_ALTNAME_INVALID");

    const plain = await waitVm("plain", "healthy", (v) =>
      healthy(v) && v.notebook.certificate ? v : undefined,
    );
    expect(plain.certificate).toEqual({ mode: "self-signed", hostname: null });
    expect(plain.notebook.certificate?.selfSigned).toBe(true);
    expect(plain.notebook.certificate?.issuer?.kind).toBe("self-signed");
    const plainReached = await getApi(plain, root, NAME);
    expect(plainReached.status).toBeUndefined();
    expect(plainReached.error).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|ALTNAME/);

    // The filter follows notAfter: a machine is listed for N days exactly when its certificate
    // has fewer than N whole days left (the self-signed one has the agent's own lifetime).
    const left = { nb1: cert.daysLeft!, plain: plain.notebook.certificate!.daysLeft! };
    expect(Math.abs(left.nb1 - left.plain)).toBeGreaterThan(2);
    for (const n of [left.nb1 - 1, left.nb1 + 1, left.plain - 1, left.plain + 1, 3650]) {
      const expected = (["nb1", "plain"] as const).filter((name) => left[name] < n);
      expect((await listed("--cert-expiring-within", String(n))).sort(), `within ${n} days`).toEqual(
        expected,
      );
    }

    // What the CLI shows of it: the CERT column, and vm show's certificate lines.
    const table = await nbfleet("vm", "ls");
    expect(table.code, table.stderr).toBe(0);
    expect(tableRows(table.stdout).map((row) => [row.NAME, row.CERT])).toEqual([
      ["nb1", `acme ${left.nb1}d`],
      ["plain", `self ${left.plain}d`],
    ]);
    const shown = await nbfleet("vm", "show", "nb1");
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(
      `certificate: acme for ${NAME} (requested)\n  served:    acme (${cert.issuer!.name})\n  chain:     valid\n  expires:   ${cert.notAfter}, ${left.nb1} day(s) left\n`,
    );
    expect(shown.stdout).toContain(`  sha-256:   ${cert.fingerprintSha256}\n`);

    const renewed = await nbfleet("op", "run", "notebook.certificate", "--name", "nb1");
    expect(renewed.code, renewed.stdout + renewed.stderr).toBe(0);
    const after = await waitVm("nb1", "serving a renewed certificate", (v) =>
      servedAcme(v, cert.fingerprintSha256),
    );
    expect(after.chainValid).toBe(true);
    expect(after.subjectAltNames).toContain(`DNS:${NAME}`);
    // The operation prints what each renewed machine serves now.
    const line = /^ {2}nb1 {2}acme \((\S+)\), until (\S+), \d+ day\(s\) left, SHA-256 (\S+)$/m.exec(
      renewed.stdout,
    );
    expect(line, renewed.stdout).not.toBeNull();
    expect(line![1]).toBe(cert.issuer!.name);
    expect(line![3]).toBe(after.fingerprintSha256);
    expect(Date.parse(line![2]!)).toBeGreaterThanOrEqual(Date.parse(cert.notAfter));
    const reachedAfter = await waitFor("the renewed certificate served and verified", async () => {
      const r = await getApi(await vm("nb1"), root, NAME);
      return r.status === 200 && r.fingerprint === hex(after.fingerprintSha256) && r;
    });
    expect(reachedAfter.fingerprint).not.toBe(reached.fingerprint);

    // The operation renewed nb1 alone: the self-signed machine serves what it did.
    const plainAfter = await vm("plain");
    expect(plainAfter.notebook.certificate?.fingerprintSha256).toBe(
      plain.notebook.certificate?.fingerprintSha256,
    );
    expect(plainAfter.notebook.certificate?.issuer?.kind).toBe("self-signed");
  }, 600_000);

  it("a name pebble cannot resolve: self-signed served, tls warns with ACME's error, then it succeeds by itself", async () => {
    const created = await nbfleet(
      "vm",
      "create",
      "late",
      "--certificate",
      "acme",
      "--hostname",
      LATE_NAME,
      "--no-wait",
    );
    expect(created.code, created.stderr).toBe(0);

    const failed = await waitVm("late", "the tls check warning about ACME", (v) => {
      const tls = v.health.checks.find((c) => c.name === "tls");
      return (
        v.notebook.state === "running" &&
        tls?.status === "warn" &&
        /ACME issuance failed/.test(tls.message) &&
        v
      );
    });
    const tls = failed.health.checks.find((c) => c.name === "tls")!;
    expect(tls.message).toContain(LATE_NAME);
    expect(tls.message).toMatch(/next attempt at \d{4}-/);
    expect(tls.data?.acme).toMatchObject({ code: "NBF_ACME_FAILED" });
    expect(failed.health.status).toBe("degraded");
    const selfSigned = failed.notebook.certificate!;
    expect(selfSigned.selfSigned).toBe(true);
    expect(selfSigned.issuer?.kind).toBe("self-signed");
    // Still serving: the notebook answers over TLS with that self-signed certificate, verified
    // by trusting the machine's own certificate file (a pin) for a name it carries.
    const ownCert = readFileSync(
      dataPaths(path.join(dataDir, "sandboxes", "late", "agent")).certFile,
      "utf8",
    );
    const served = await getApi(failed, ownCert, "localhost");
    expect(served.status).toBe(200);
    expect(served.fingerprint).toBe(hex(selfSigned.fingerprintSha256));
    expect((await getApi(failed, root, LATE_NAME)).status).toBeUndefined();
    expect(await pebble.dnsQueries()).toContain(`A ${LATE_NAME}`);

    await pebble.addNames(LATE_NAME);
    const issued = await waitVm(
      "late",
      "a certificate from pebble after the name resolves",
      (v) => healthy(v) && servedAcme(v) && v,
    );
    expect(issued.notebook.certificate?.subjectAltNames).toContain(`DNS:${LATE_NAME}`);
    expect(issued.health.checks.find((c) => c.name === "tls")?.message).not.toMatch(/failed/);
    const reached = await waitFor("late's notebook verified by pebble's root", async () => {
      const r = await getApi(await vm("late"), root, LATE_NAME);
      return r.status === 200 && r;
    });
    expect(reached.fingerprint).toBe(hex(issued.notebook.certificate!.fingerprintSha256));
  }, 600_000);
});
