/**
 * The relay between replicas that serve HTTPS: the peer is verified (same CA, or the shared
 * certificate's pin) before a byte is written to it; an impostor gets a handshake and nothing
 * else, and the client gets the offline-agent error.
 */
import { readFileSync, writeFileSync } from "node:fs";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { HandOverProvider } from "@nbfleet/testkit/hand-over-provider";
import { call } from "@nbfleet/testkit/http";
import { freshDatabaseUrl } from "@nbfleet/testkit/postgres-database";
import { makeTestCa, renewWithSameKey, selfSignedPair } from "@nbfleet/testkit/test-ca";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { ControllerSettings } from "../../config/settings.js";

const started: Array<{ close(): Promise<void> | void }> = [];
afterEach(async () => {
  for (const item of started.splice(0).reverse()) await item.close();
});

const dir = makeDataDir("nbf-relay-tls-", 0o700);
const ADMIN = "nbf_relay-tls-admin-token";

async function replicas(tls: (n: number) => Promise<Partial<ControllerSettings>>) {
  const databaseUrl = await freshDatabaseUrl();
  const start = async (n: number) => {
    const controller = await startTestController({
      provider: new HandOverProvider(),
      settings: { databaseUrl, adminToken: ADMIN, replicaHeartbeatSec: 600, ...(await tls(n)) },
    });
    started.push(controller);
    return controller;
  };
  const a = await start(0);
  const b = await start(1);
  const created = await call(b.app, "POST", "/v1/vms", { token: ADMIN, body: { name: "box" } });
  expect(created.statusCode).toBe(201);
  await b.app.nbfleet.store.writer.flush();
  await owns(b, b.app.nbfleet.relay.replicaId, b.url, "box");
  return { a, b };
}

/** What the registry and gateway write when `id` at `url` holds the agent of `vm`. */
async function owns(on: TestController, id: string, url: string, vm: string): Promise<void> {
  const { db } = on.app.nbfleet.store;
  const now = new Date().toISOString();
  await db
    .insertInto("replicas")
    .values({ id, url, version: "test", started_at: now, heartbeat_at: now, agents: 1, key_sha256: null })
    .onConflict((oc) => oc.column("id").doUpdateSet({ url, heartbeat_at: now }))
    .execute();
  await db.updateTable("vm_status").set({ replica_id: id }).where("vm_name", "=", vm).execute();
}

/** Relayed requests the owner accepted so far (the nonces its verifier remembers). */
function accepted(owner: TestController): number {
  return (owner.app.nbfleet.relay.verifier as unknown as { seen: Map<string, number> }).seen.size;
}

/**
 * Attaching to an unknown session: answered 404 by the owner when the relay reached it, 409
 * (the agent is offline as far as this replica can tell) when it could not reach it.
 */
async function probe(a: TestController): Promise<number> {
  const ws = new WebSocket(
    `${a.url.replace(/^http/, "ws")}/v1/vms/box/shell?session=trm_0000000000000000000000`,
    {
      headers: { authorization: `Bearer ${ADMIN}` },
      rejectUnauthorized: false,
    },
  );
  return new Promise<number>((resolve) => {
    ws.once("unexpected-response", (_req, res) => {
      resolve(res.statusCode ?? 0);
      ws.terminate();
    });
    ws.once("open", () => {
      resolve(101);
      ws.terminate();
    });
    ws.once("error", () => resolve(-1));
  });
}

/** An HTTPS server with another certificate (PEM, or files), counting connections and requests. */
async function impostor(cert: { cert: string; key: string } | { certPem: string; keyPem: string }) {
  const pem =
    "certPem" in cert
      ? { cert: cert.certPem, key: cert.keyPem }
      : { cert: readFileSync(cert.cert, "utf8"), key: readFileSync(cert.key, "utf8") };
  const seen = { connections: 0, requests: 0 };
  const server = https.createServer(pem, (_req, res) => {
    seen.requests++;
    res.end();
  });
  server.on("upgrade", (_req, socket) => {
    seen.requests++;
    socket.destroy();
  });
  server.on("connection", () => seen.connections++);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  started.push({ close: () => new Promise<void>((resolve) => server.close(() => resolve())) });
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

describe("relaying between HTTPS replicas", () => {
  it("with one shared certificate and no CA: only a peer serving exactly it is spoken to", async () => {
    const shared = await selfSignedPair(dir, "shared");
    const { a, b } = await replicas(async () => ({ tlsCert: shared.cert, tlsKey: shared.key }));
    expect(b.url).toMatch(/^https:/);
    expect(await probe(a)).toBe(404);
    expect(accepted(b)).toBe(1);

    const fake = await impostor(await selfSignedPair(dir, "other"));
    await owns(a, "rep_impostor", fake.url, "box");
    const started = Date.now();
    expect(await probe(a)).toBe(409);
    expect(Date.now() - started).toBeLessThan(3000);
    expect(fake.seen.connections).toBeGreaterThan(0);
    expect(fake.seen.requests).toBe(0);

    // A replica URL without TLS is never used by a replica that serves HTTPS: served here, where
    // the session is unknown too, and nothing reaches B.
    await owns(a, "rep_plain", b.url.replace(/^https:/, "http:"), "box");
    expect(await probe(a)).toBe(404);
    expect(accepted(b)).toBe(1);
  });

  it("with no CA, while the replicas move to a certificate renewed with the same key: both ways", async () => {
    const shared = await selfSignedPair(dir, "before-renewal");
    const renewed = renewWithSameKey(shared.key, dir, "renewed");
    const { a, b } = await replicas(async (n) => ({
      tlsCert: n === 0 ? shared.cert : renewed,
      tlsKey: shared.key,
    }));
    expect(await probe(a)).toBe(404);
    expect(accepted(b)).toBe(1);
    await owns(b, a.app.nbfleet.relay.replicaId, a.url, "box");
    expect(await probe(b)).toBe(404);
    expect(accepted(a)).toBe(1);
  });

  it("with no CA, while the replicas move to a certificate with a new key: both ways, by the key each registered", async () => {
    const before = await selfSignedPair(dir, "before-new-key");
    const after = await selfSignedPair(dir, "after-new-key");
    const { a, b } = await replicas(async (n) => {
      const pair = n === 0 ? before : after;
      return { tlsCert: pair.cert, tlsKey: pair.key };
    });
    expect(await probe(a)).toBe(404);
    expect(accepted(b)).toBe(1);
    await owns(b, a.app.nbfleet.relay.replicaId, a.url, "box");
    expect(await probe(b)).toBe(404);
    expect(accepted(a)).toBe(1);

    // A peer serving a key other than the one its row names is refused before a byte is sent.
    const fake = await impostor(await selfSignedPair(dir, "unregistered-key"));
    await owns(a, "rep_liar", fake.url, "box");
    const { db } = a.app.nbfleet.store;
    const registered = await db
      .selectFrom("replicas")
      .select("key_sha256")
      .where("id", "=", b.app.nbfleet.relay.replicaId)
      .executeTakeFirstOrThrow();
    await db
      .updateTable("replicas")
      .set({ key_sha256: registered.key_sha256 })
      .where("id", "=", "rep_liar")
      .execute();
    expect(await probe(a)).toBe(409);
    expect(fake.seen.connections).toBeGreaterThan(0);
    expect(fake.seen.requests).toBe(0);
  });

  it("with a CA: each replica's own certificate from it, a certificate from another CA refused", async () => {
    const ca = await makeTestCa();
    const caFile = join(dir, "ca.pem");
    writeFileSync(caFile, ca.caPem);
    const { a, b } = await replicas(async (n) => {
      const pair = await ca.issueServer();
      const cert = join(dir, `ca-issued-${n}.pem`);
      const key = join(dir, `ca-issued-${n}-key.pem`);
      writeFileSync(cert, pair.certPem);
      writeFileSync(key, pair.keyPem, { mode: 0o600 });
      return { tlsCert: cert, tlsKey: key, tlsCa: caFile };
    });
    expect(await probe(a)).toBe(404);
    expect(accepted(b)).toBe(1);

    const otherCa = await makeTestCa("some other CA");
    const fake = await impostor(await otherCa.issueServer());
    await owns(a, "rep_impostor", fake.url, "box");
    expect(await probe(a)).toBe(409);
    expect(fake.seen.connections).toBeGreaterThan(0);
    expect(fake.seen.requests).toBe(0);
  });
});
