/** `nbfleet op run controller.trust --trust-cert FILE…`: the files read and sent, bad ones refused before any request. */
import { readFileSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import path from "node:path";
import { runCli } from "@nbfleet/testkit/cli";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
import { selfSignedPair } from "@nbfleet/testkit/test-ca";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let dir: string;
let served: { cert: string; key: string };
let next: { cert: string; key: string };
let controller: TestController;
const extraCa = process.env.NODE_EXTRA_CA_CERTS;

beforeAll(async () => {
  dir = makeDataDir("nbf-op-trust-");
  served = await selfSignedPair(dir, "served");
  next = await selfSignedPair(dir, "next");
  controller = await startTestController({ settings: { tlsCert: served.cert, tlsKey: served.key } });
  await seedVms(controller.app, { count: 2 });
  // The CLI reaches the HTTPS test controller as an operator's would: trusting its certificate.
  process.env.NODE_EXTRA_CA_CERTS = served.cert;
}, 60_000);

afterAll(async () => {
  if (extraCa === undefined) Reflect.deleteProperty(process.env, "NODE_EXTRA_CA_CERTS");
  else process.env.NODE_EXTRA_CA_CERTS = extraCa;
  await controller?.close();
  await rm(dir, { recursive: true, force: true });
});

const nbfleet = (...args: string[]) => runCli(controller, ...args);
const operations = async () => (await controller.app.nbfleet.store.operations.list(100)).length;

describe("nbfleet op run controller.trust", () => {
  it("sends the certificates of the files given", async () => {
    const run = await nbfleet(
      "--json",
      "op",
      "run",
      "controller.trust",
      "--all",
      "--trust-cert",
      served.cert,
      "--trust-cert",
      next.cert,
      "--no-wait",
    );
    expect(run.code, run.stderr).toBe(0);
    const { operation } = JSON.parse(run.stdout);
    expect(operation).toMatchObject({ action: "controller.trust", total: 2 });
    const stored = await controller.app.nbfleet.store.operations.get(operation.id);
    expect((stored!.params as { commandParams: { pins: unknown[] } }).commandParams.pins).toHaveLength(2);
  }, 60_000);

  it("passes on the controller's refusal of a set without the served certificate", async () => {
    const before = await operations();
    const run = await nbfleet("op", "run", "controller.trust", "--all", "--trust-cert", next.cert);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/must include the certificate this controller serves/);
    expect(await operations()).toBe(before);
  }, 60_000);

  it.each<[string, () => string[], RegExp]>([
    ["no --trust-cert", () => [], /controller\.trust needs --trust-cert <file>/],
    [
      "a missing file",
      () => ["--trust-cert", path.join(dir, "absent.pem")],
      /--trust-cert .*absent\.pem: ENOENT/,
    ],
    [
      "a file too large to be a certificate",
      () => {
        const huge = path.join(dir, "huge.pem");
        writeFileSync(huge, "A".repeat(70_000));
        return ["--trust-cert", huge];
      },
      /larger than 65536 bytes/,
    ],
  ])(
    "refuses %s before any request",
    async (_what, flags, why) => {
      const before = await operations();
      const run = await nbfleet("op", "run", "controller.trust", "--all", ...flags());
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(why);
      expect(await operations()).toBe(before);
    },
    60_000,
  );

  it("refuses --trust-cert for another action", async () => {
    const run = await nbfleet("op", "run", "notebook.restart", "--all", "--trust-cert", served.cert);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("--trust-cert: only for controller.trust");
    expect(readFileSync(served.cert, "utf8")).toContain("BEGIN CERTIFICATE");
  }, 60_000);
});
