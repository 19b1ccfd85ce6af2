/**
 * The CLI on an ACME fleet, end to end: `nbfleet server` (local provider, the agent built from
 * this checkout) pointed at a real ACME server (Debian's pebble, HTTP-01 validated against the
 * agent's own answer, 10-day certificates), a machine made with `nbfleet vm create --certificate
 * acme --hostname H`, its certificate seen by `vm ls` (CERT, --cert-expiring-within) and `vm
 * show`, then renewed from the CA by `nbfleet op run notebook.certificate`.
 */
import { rmSync } from "node:fs";
import type { VmView } from "@nbfleet/shared";
import { runCli } from "@nbfleet/testkit/cli";
import { tableRows } from "@nbfleet/testkit/cli-table";
import {
  type ControllerProcess,
  api,
  startControllerProcess,
  stopControllerProcess,
} from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { type Pebble, startPebble } from "@nbfleet/testkit/pebble";
import { freePort } from "@nbfleet/testkit/ports";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const NAME = "nb1.cli-acme.test";
const TOKEN = "nbf_cli-acme-admin-token-0123456789";
const LIFETIME_SEC = 10 * 86_400;
let pebble: Pebble;
let controller: ControllerProcess;
let dataDir: string;

beforeAll(async () => {
  pebble = await startPebble({ names: [NAME], certificateValiditySec: LIFETIME_SEC });
  dataDir = makeDataDir("nbf-cli-acme-");
  controller = await startControllerProcess(dataDir, await freePort(), TOKEN, {
    NBFLEET_ACME_DIRECTORY: pebble.directoryUrl,
    NBFLEET_ACME_CA_FILE: pebble.caFile,
    NBFLEET_ACME_CHALLENGE: "http-01",
    NBFLEET_ACME_CHALLENGE_PORT: String(pebble.httpPort),
  });
}, 240_000);

afterAll(async () => {
  if (controller) {
    await api(controller)("DELETE", "/v1/vms/nb1").catch(() => undefined);
    await stopControllerProcess(controller);
  }
  await pebble?.remove();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

const nbfleet = (...args: string[]) => runCli({ url: controller.url, adminToken: TOKEN }, ...args);
const vm = async () => (await api(controller)<VmView>("GET", "/v1/vms/nb1")).body;

/** The machine once it serves a certificate from pebble (and, when given, another one than `not`). */
const servingAcme = (not?: string) =>
  waitFor(
    "nb1 serving an ACME certificate",
    async () => {
      const view = await vm();
      const cert = view.notebook.certificate;
      return cert?.issuer?.kind === "acme" && cert.fingerprintSha256 !== not && view;
    },
    240_000,
  ).catch(async (error) => {
    throw new Error(
      `${(error as Error).message}\nlast view: ${JSON.stringify(await vm())}\n${controller.output().slice(-3000)}`,
    );
  });

describe("nbfleet on an ACME fleet (pebble)", () => {
  it("creates an ACME machine, lists and shows its certificate, and renews it fleet-wide", async () => {
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

    const first = await servingAcme();
    const cert = first.notebook.certificate!;
    expect(cert.subjectAltNames).toContain(`DNS:${NAME}`);
    expect(cert.chainValid).toBe(true);

    const listed = await nbfleet("vm", "ls");
    expect(listed.code, listed.stderr).toBe(0);
    expect(tableRows(listed.stdout)).toEqual([expect.objectContaining({ NAME: "nb1", CERT: "acme 9d" })]);
    const within10 = await nbfleet("vm", "ls", "--cert-expiring-within", "10");
    expect(tableRows(within10.stdout).map((row) => row.NAME)).toEqual(["nb1"]);
    const within9 = await nbfleet("vm", "ls", "--cert-expiring-within", "9");
    expect(within9.stdout).toBe("no machines\n");

    const shown = await nbfleet("vm", "show", "nb1");
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain(
      `certificate: acme for ${NAME} (requested)\n  served:    acme (${cert.issuer!.name})\n  chain:     valid\n  expires:   ${cert.notAfter}, 9 day(s) left\n`,
    );
    expect(shown.stdout).toContain(`  sha-256:   ${cert.fingerprintSha256}\n`);

    const renewed = await nbfleet("op", "run", "notebook.certificate", "--all");
    expect(renewed.code, renewed.stdout + renewed.stderr).toBe(0);
    const served = /^ {2}nb1 {2}acme \((\S+)\), until (\S+), 9 day\(s\) left, SHA-256 (\S+)$/m.exec(
      renewed.stdout,
    );
    expect(served, renewed.stdout).not.toBeNull();
    const [, issuer, notAfter, fingerprint] = served!;
    expect(issuer).toBe(cert.issuer!.name);
    expect(fingerprint).not.toBe(cert.fingerprintSha256);
    expect(Date.parse(notAfter!)).toBeGreaterThan(Date.parse(cert.notAfter));
    const after = await servingAcme(cert.fingerprintSha256);
    expect(after.notebook.certificate!.fingerprintSha256).toBe(fingerprint);
  }, 600_000);
});
