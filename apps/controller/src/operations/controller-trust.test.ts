/**
 * controller.trust through the API: the certificates given become the pins each agent is sent,
 * and every kind of bad input is refused before anything is stored. (The agent's side, and a
 * real agent following its controller onto a new key, are in link-tls.test.ts and the
 * azure-tls end-to-end test.)
 */
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { certificateSha256, publicKeySha256 } from "@nbfleet/shared/certificate-pin";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { call } from "@nbfleet/testkit/http";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
import { operatorPair, selfSignedPair } from "@nbfleet/testkit/test-ca";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let dir: string;
let served: { cert: string; key: string };
let servedPem: string;
let nextPem: string;
let nextKeyPem: string;
let controller: TestController;

const pinOf = (pem: string) => {
  const cert = new X509Certificate(pem);
  return { certificateSha256: certificateSha256(cert), keySha256: publicKeySha256(cert) };
};

beforeAll(async () => {
  dir = makeDataDir("nbf-controller-trust-");
  served = await selfSignedPair(dir, "served");
  servedPem = readFileSync(served.cert, "utf8");
  const next = await selfSignedPair(dir, "next");
  nextPem = readFileSync(next.cert, "utf8");
  nextKeyPem = readFileSync(next.key, "utf8");
  controller = await startTestController({
    settings: { tlsCert: served.cert, tlsKey: served.key },
    listen: false,
  });
  await seedVms(controller.app, { count: 3 });
});

afterAll(async () => {
  await controller?.close();
  await rm(dir, { recursive: true, force: true });
});

function trust(body: Record<string, unknown>, app = controller.app) {
  return call(app, "POST", "/v1/operations", {
    token: app.nbfleet.adminToken.token,
    body: { action: "controller.trust", selector: { all: true }, ...body },
  });
}

describe("controller.trust operations", () => {
  it("sends every agent the pins of the certificates given, the served one and the next", async () => {
    const created = await trust({ params: { certificates: [servedPem, nextPem, servedPem] } });
    expect(created.statusCode).toBe(201);
    const operation = created.json().operation;
    expect(operation).toMatchObject({ action: "controller.trust", total: 3 });
    const commands = await call(controller.app, "GET", "/v1/vms/sim-0/commands", {
      token: controller.adminToken,
    });
    const sent = commands.json().items.find((c: { name: string }) => c.name === "controller.trust");
    // The duplicate is sent once; only hashes travel, never the PEM.
    expect(sent.params).toEqual({ pins: [pinOf(servedPem), pinOf(nextPem)] });
    await call(controller.app, "POST", `/v1/operations/${operation.id}/cancel`, {
      token: controller.adminToken,
    });
  });

  it("shows the served key in the replica list", async () => {
    const replicas = await call(controller.app, "GET", "/v1/replicas", { token: controller.adminToken });
    expect(replicas.json().items[0].keySha256).toBe(pinOf(servedPem).keySha256);
  });

  // The PEMs are made in beforeAll: each case names them through a function.
  const damaged = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
  it.each<[string, () => Record<string, unknown>, RegExp]>([
    ["no certificates", () => ({}), /needs params\.certificates/],
    [
      "a set without the served certificate or its key",
      () => ({ certificates: [nextPem] }),
      /must include the certificate this controller serves/,
    ],
    [
      "a private key",
      () => ({ certificates: [servedPem, nextKeyPem] }),
      /params\.certificates\[1\] holds a private key/,
    ],
    [
      "two certificates in one entry",
      () => ({ certificates: [servedPem + nextPem] }),
      /exactly one PEM certificate, found 2/,
    ],
    [
      "text that is no certificate",
      () => ({ certificates: [servedPem, "hello"] }),
      /exactly one PEM certificate, found 0/,
    ],
    [
      "a damaged certificate",
      () => ({ certificates: [servedPem, damaged] }),
      /params\.certificates\[1\] is not a readable certificate/,
    ],
    [
      "five certificates",
      () => ({ certificates: Array.from({ length: 5 }, () => servedPem) }),
      /params\.certificates/,
    ],
    [
      "a version",
      () => ({ certificates: [servedPem], version: "1.2.3" }),
      /params\.version is only for agent\.upgrade/,
    ],
  ])("refuses %s, naming it, and stores nothing", async (_what, params, why) => {
    const count = async () =>
      (await call(controller.app, "GET", "/v1/operations", { token: controller.adminToken })).json().items
        .length;
    const before = await count();
    const refused = await trust({ params: params() });
    expect(refused.statusCode).toBe(400);
    expect(JSON.stringify(refused.json().error)).toMatch(why);
    expect(await count()).toBe(before);
  });

  it("needs an admin: an operator may not choose whom agents trust", async () => {
    const token = await call(controller.app, "POST", "/v1/tokens", {
      token: controller.adminToken,
      body: { name: "ops", role: "operator" },
    });
    expect(token.statusCode).toBe(201);
    const refused = await call(controller.app, "POST", "/v1/operations", {
      token: token.json().token,
      body: {
        action: "controller.trust",
        selector: { all: true },
        params: { certificates: [servedPem, nextPem] },
      },
    });
    expect(refused.statusCode).toBe(403);
    expect(refused.json().error).toMatchObject({ code: "NBF_FORBIDDEN", details: { needed: "admin" } });
    const restart = await call(controller.app, "POST", "/v1/operations", {
      token: token.json().token,
      body: { action: "notebook.restart", selector: { all: true }, ifOffline: "fail" },
    });
    expect(restart.statusCode).toBe(201);
  });

  it("refuses an expired certificate", async () => {
    const expired = await operatorPair({ notBefore: new Date(Date.now() - 10 * 86_400_000), days: 2 });
    const refused = await trust({ params: { certificates: [servedPem, expired.certPem] } });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().error.details.problem).toMatch(
      /params\.certificates\[1\] \(SHA-256 [0-9A-F:]+\) expired at/,
    );
  });

  it("refuses certificates for another action", async () => {
    const refused = await call(controller.app, "POST", "/v1/operations", {
      token: controller.adminToken,
      body: {
        action: "notebook.certificate",
        selector: { all: true },
        params: { certificates: [servedPem] },
      },
    });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().error.details.problem).toBe("params.certificates is only for controller.trust");
  });

  it("is refused by a controller whose guests pin nothing (a CA, ACME or plain HTTP)", async () => {
    const plain = await startTestController({ listen: false });
    try {
      await seedVms(plain.app, { count: 1 });
      const refused = await trust({ params: { certificates: [servedPem] } }, plain.app);
      expect(refused.statusCode).toBe(400);
      expect(refused.json().error.details.problem).toMatch(/guests do not pin this controller's certificate/);
    } finally {
      await plain.close();
    }
  });
});
