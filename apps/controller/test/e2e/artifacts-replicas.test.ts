/**
 * Two real `nbfleet server` replicas on one PostgreSQL, each with a data dir of its own (as on two
 * machines; they share only the database): the agent artifact catalog is the cluster's (what one
 * published the other lists and serves, the same bytes from its own copy), and a replica whose
 * release key is not the cluster's does not start, its message naming the key file to copy to
 * and never showing a private key.
 */
import { chmod, copyFile, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { AGENT_ARTIFACTS_PATH, agentArtifactFilePath } from "@nbfleet/shared";
import { fakeArtifact } from "@nbfleet/testkit/artifact-tarball";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freshDatabaseUrl } from "@nbfleet/testkit/postgres-database";
import { Cluster } from "@nbfleet/testkit/replicas";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RELEASE_KEY_FILE, ensureReleaseKey } from "../../src/artifacts/release-key.js";

const TOKEN = "nbf_e2e-artifacts-replicas-0123456789";
const dirs = [makeDataDir("nbf-e2e-replica-a-"), makeDataDir("nbf-e2e-replica-b-")];
const keyOf = (index: number) => path.join(dirs[index]!, RELEASE_KEY_FILE);
let cluster: Cluster;

beforeAll(async () => {
  // The operator's recipe: the first replica's key file copied to every other one.
  await ensureReleaseKey(dirs[0]!);
  await copyFile(keyOf(0), keyOf(1));
  await chmod(keyOf(1), 0o600);
  cluster = await Cluster.start({
    replicas: 2,
    databaseUrl: await freshDatabaseUrl(),
    token: TOKEN,
    dataDirs: dirs,
  });
}, 240_000);

afterAll(async () => {
  await cluster?.stop();
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
}, 60_000);

describe("agent artifacts on replicas with data dirs of their own", () => {
  it("what one replica published the other lists and serves (same bytes, from its own copy)", async () => {
    const bytes = fakeArtifact("3.1.0");
    const published = await fetch(`${cluster.replica(0).url}${AGENT_ARTIFACTS_PATH}`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/gzip" },
      body: bytes,
    });
    expect(published.status, cluster.outputs()).toBe(201);
    const record = (await published.json()) as { sha256: string; signature: string };

    const listed = await cluster.api(1)<{
      items: Array<{ version: string; sha256: string; signature: string }>;
      releasePublicKey: string;
    }>("GET", AGENT_ARTIFACTS_PATH);
    expect(listed.body.items.find((i) => i.version === "3.1.0")).toMatchObject({
      sha256: record.sha256,
      signature: record.signature,
    });
    // Both replicas built their own built-in artifact: the same bytes, one row, no flip-flop.
    const builtIns = listed.body.items.filter((i) => i.version !== "3.1.0");
    expect(builtIns).toHaveLength(1);
    for (const index of [0, 1])
      expect(cluster.replica(index).process!.output()).not.toMatch(/was rebuilt with other bytes/);

    const download = await fetch(`${cluster.replica(1).url}${agentArtifactFilePath("3.1.0")}`);
    expect(download.status).toBe(200);
    expect(download.headers.get("x-nbfleet-sha256")).toBe(record.sha256);
    expect(Buffer.from(await download.arrayBuffer())).toEqual(bytes);
    expect(await readFile(path.join(dirs[1]!, "artifacts", `${record.sha256}.tar.gz`))).toEqual(bytes);
  });

  it("a replica with a release key of its own does not start, naming the file to copy the cluster's key to", async () => {
    await cluster.kill(1, "SIGTERM");
    const other = makeDataDir("nbf-e2e-other-key-");
    const stray = await ensureReleaseKey(other);
    await copyFile(stray.file, keyOf(1));
    await rm(other, { recursive: true, force: true });
    const refused = await cluster.start(1).then(
      () => null,
      (error: Error) => error.message,
    );
    expect(refused, "a replica with another release key started").not.toBeNull();
    expect(refused).toMatch(/nbfleet server exited \(1\)/);
    expect(refused).toContain(`the release key in ${keyOf(1)} is not the cluster's`);
    expect(refused).toContain("copy the cluster's key file");
    expect(refused).toContain("[NBF_CONFIG_INVALID]");
    const secret = stray.privateKeyPem.split("\n")[1]!;
    expect(refused).not.toContain(secret);
    expect(refused).not.toMatch(/PRIVATE KEY/);

    await copyFile(keyOf(0), keyOf(1));
    await cluster.start(1);
    const listed = await cluster.api(1)<{ items: Array<{ version: string }> }>("GET", AGENT_ARTIFACTS_PATH);
    expect(listed.body.items.map((i) => i.version)).toContain("3.1.0");
  }, 240_000);
});
