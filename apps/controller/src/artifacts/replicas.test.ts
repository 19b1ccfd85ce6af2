/**
 * Two replicas on one PostgreSQL that share nothing else (each a data dir of its own, as on two
 * machines): one release key for both or the second does not start; an artifact published on
 * one is listed, served (same bytes) and rolled out by an agent.upgrade operation on the other,
 * the agent checking the signature with the cluster's public key.
 */
import { copyFile, readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { AGENT_ARTIFACTS_PATH, agentArtifactFilePath } from "@nbfleet/shared";
import { verifyArtifact } from "@nbfleet/shared/artifact-signature";
import { fakeArtifact } from "@nbfleet/testkit/artifact-tarball";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freshDatabaseUrl } from "@nbfleet/testkit/postgres-database";
import { SimAgent } from "@nbfleet/testkit/sim-agent";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
import { eventually } from "@nbfleet/testkit/wait";
import { afterAll, describe, expect, it } from "vitest";
import { RELEASE_KEY_FILE } from "./release-key.js";

const replicas: TestController[] = [];
const agents: SimAgent[] = [];
afterAll(async () => {
  for (const agent of agents) agent.close();
  await Promise.all(replicas.map((replica) => replica.close()));
}, 30_000);

// biome-ignore lint/suspicious/noExplicitAny: JSON bodies, read by the assertions
type Json = any;
async function call(replica: TestController, method: string, route: string, body?: unknown): Promise<Json> {
  const response = await fetch(`${replica.url}${route}`, {
    method,
    headers: {
      authorization: `Bearer ${replica.adminToken}`,
      ...(body !== undefined ? { "content-type": "application/json" } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: response.status, body: await response.json() };
}

describe("the artifact catalog across replicas with data dirs of their own", () => {
  it("refuses a replica with another release key, starts it with a copy of the cluster's key file, and serves and rolls out what the other published", async () => {
    const databaseUrl = await freshDatabaseUrl();
    const aKey = path.join(makeDataDir("nbf-replica-a-"), RELEASE_KEY_FILE);
    const a = await startTestController({
      settings: { databaseUrl, releaseKeyFile: aKey, reportIntervalSec: 1 },
    });
    replicas.push(a);

    // B on another "machine": its own data dir, so its own freshly made key.
    const bDir = makeDataDir("nbf-replica-b-");
    const bKey = path.join(bDir, RELEASE_KEY_FILE);
    const settingsB = {
      databaseUrl,
      dataDir: bDir,
      releaseKeyFile: bKey,
      adminToken: a.adminToken,
      reportIntervalSec: 1,
    };
    const refusal: Error & { code?: string } = await startTestController({ settings: settingsB }).then(
      (started) => {
        replicas.push(started);
        throw new Error("a replica with another release key started");
      },
      (error: Error) => error,
    );
    expect(refusal.code).toBe("NBF_CONFIG_INVALID");
    expect(refusal.message).toContain(`the release key in ${bKey} is not the cluster's`);
    expect(refusal.message).toContain(`copy the cluster's key file`);
    expect(refusal.message).not.toMatch(/PRIVATE KEY/);
    // Refused before it changed anything: no artifact rows or copies of its own.
    expect(await readdir(bDir)).not.toContain("artifacts");

    await copyFile(aKey, bKey);
    const b = await startTestController({ settings: settingsB });
    replicas.push(b);

    const bytes = fakeArtifact("2.0.0");
    const published = await fetch(`${a.url}${AGENT_ARTIFACTS_PATH}`, {
      method: "POST",
      headers: { authorization: `Bearer ${a.adminToken}`, "content-type": "application/gzip" },
      body: bytes,
    });
    expect(published.status).toBe(201);
    const record: Json = await published.json();

    // Listed on B with A's signature, verifying with the one public key both show.
    const listA = (await call(a, "GET", AGENT_ARTIFACTS_PATH)).body;
    const listB = (await call(b, "GET", AGENT_ARTIFACTS_PATH)).body;
    expect(listB.releasePublicKey).toBe(listA.releasePublicKey);
    expect(listB.items.find((i: { version: string }) => i.version === "2.0.0")).toMatchObject({
      sha256: record.sha256,
      signature: record.signature,
      bytes: bytes.length,
      newest: true,
    });
    expect(verifyArtifact(listB.releasePublicKey, "2.0.0", record.sha256, record.signature)).toBe(true);

    // Downloaded from B: the same bytes, from B's own copy.
    const download = await fetch(`${b.url}${agentArtifactFilePath("2.0.0")}`);
    expect(download.status).toBe(200);
    expect(download.headers.get("x-nbfleet-sha256")).toBe(record.sha256);
    expect(Buffer.from(await download.arrayBuffer())).toEqual(bytes);
    expect(await readFile(path.join(bDir, "artifacts", `${record.sha256}.tar.gz`))).toEqual(bytes);

    // Rolled out by an operation made on B to agents connected to B, which download it there
    // and check its signature with the cluster's public key.
    const vms = await seedVms(b.app, { count: 2, prefix: "ha" });
    for (const vm of vms) {
      const agent = new SimAgent({
        url: b.url,
        token: vm.credential,
        hostname: vm.name,
        upgrade: { restartMs: 100, releasePublicKeyPem: listB.releasePublicKey },
      });
      agents.push(agent);
      await agent.connect();
    }
    await b.app.nbfleet.store.writer.flush();
    const created = await call(b, "POST", "/v1/operations", {
      action: "agent.upgrade",
      selector: { all: true },
      params: { version: "2.0.0" },
      maxConcurrency: 2,
      maxErrors: 0,
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const id = created.body.operation.id as string;
    const op = await eventually(
      async () => (await call(b, "GET", `/v1/operations/${id}?targetsLimit=10`)).body,
      (o) => o.state !== "running" && o.state !== "pending",
      30_000,
      100,
    );
    expect(op.targets.items.map((t: { state: string }) => t.state)).toEqual(["succeeded", "succeeded"]);
    for (const agent of agents) {
      expect(agent.version).toBe("2.0.0");
      expect(agent.upgrader?.record.runs).toEqual([
        expect.objectContaining({ to: "2.0.0", bytes: bytes.length, refused: null }),
      ]);
    }
  }, 90_000);
});
