/**
 * The release key and the artifact catalog on both store dialects: records and bytes in the
 * database, local copies per sha256, replicas with data dirs of their own sharing one database.
 */
import { createHash, generateKeyPairSync, randomBytes } from "node:crypto";
import { chmod, copyFile, readFile, readdir, rename, stat, utimes, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { verifyArtifact } from "@nbfleet/shared/artifact-signature";
import { fakeArtifact, tarEntry, tarGz } from "@nbfleet/testkit/artifact-tarball";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { STORE_DIALECTS, type StoreLocation, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { afterEach, describe, expect, it } from "vitest";
import { type Store, openStore } from "../store/store.js";
import { RELEASE_PUBLIC_KEY_SETTING } from "./cluster-key.js";
import { RELEASE_KEY_FILE, ensureReleaseKey, ensureReleaseKeyFile } from "./release-key.js";
import { ArtifactStore } from "./store.js";

interface Line {
  level: "info" | "warn";
  msg: string;
}
function recordingLog() {
  const lines: Line[] = [];
  return {
    lines,
    info: (_obj: object, msg?: string) => lines.push({ level: "info", msg: msg ?? "" }),
    warn: (_obj: object, msg?: string) => lines.push({ level: "warn", msg: msg ?? "" }),
  };
}
const sha = (bytes: Buffer) => createHash("sha256").update(bytes).digest("hex");
const body = (bytes: Buffer) => Readable.from([bytes]);

describe("release key", () => {
  it("is made once, 0600, Ed25519, and read back unchanged at the next start", async () => {
    const dataDir = makeDataDir();
    const first = await ensureReleaseKey(dataDir);
    expect(first.created).toBe(true);
    expect(first.file).toBe(path.join(dataDir, RELEASE_KEY_FILE));
    expect((await stat(first.file)).mode & 0o777).toBe(0o600);
    expect(await readFile(first.file, "utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    expect(first.publicKeyPem).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    const again = await ensureReleaseKey(dataDir);
    expect(again).toEqual({ ...first, created: false });
    // Nothing but the key was left behind (no temp files).
    expect((await readdir(dataDir)).filter((f) => f.startsWith(RELEASE_KEY_FILE))).toEqual([
      RELEASE_KEY_FILE,
    ]);
  });

  it("is made by exactly one of several processes starting together", async () => {
    const dataDir = makeDataDir();
    const keys = await Promise.all(Array.from({ length: 8 }, () => ensureReleaseKey(dataDir)));
    expect(new Set(keys.map((k) => k.publicKeyPem)).size).toBe(1);
    expect(keys.filter((k) => k.created).length).toBe(1);
  });

  it("refuses a key file others may read, naming the file and the fix", async () => {
    const dataDir = makeDataDir();
    const { file } = await ensureReleaseKey(dataDir);
    await chmod(file, 0o644);
    await expect(ensureReleaseKey(dataDir)).rejects.toMatchObject({
      code: "NBF_CONFIG_INVALID",
      message: expect.stringMatching(/release-key\.pem.*mode 644 lets other users read it; chmod 600/),
    });
  });

  it("refuses a key file that is not an Ed25519 key", async () => {
    const dataDir = makeDataDir();
    const rsa = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey.export({
      type: "pkcs8",
      format: "pem",
    });
    await writeFile(path.join(dataDir, RELEASE_KEY_FILE), rsa, { mode: 0o600 });
    await expect(ensureReleaseKey(dataDir)).rejects.toThrow(/not an Ed25519 private key.*rsa key/);
    await writeFile(path.join(dataDir, RELEASE_KEY_FILE), "garbage", { mode: 0o600 });
    await expect(ensureReleaseKey(dataDir)).rejects.toThrow(/not an Ed25519 private key/);
  });
});

describe("release key file", () => {
  it("is made 0600 at a path of its own (releaseKeyFile), and named when its directory is missing", async () => {
    const file = path.join(makeDataDir(), "cluster-release.pem");
    const made = await ensureReleaseKeyFile(file);
    expect(made).toMatchObject({ file, created: true });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await ensureReleaseKeyFile(file)).toEqual({ ...made, created: false });
    const nowhere = path.join(makeDataDir(), "missing-dir", "release-key.pem");
    await expect(ensureReleaseKeyFile(nowhere)).rejects.toMatchObject({
      code: "NBF_CONFIG_INVALID",
      message: expect.stringMatching(/missing-dir\/release-key\.pem.*its directory does not exist/),
    });
  });
});

const open: Store[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((store) => store.close()));
});

async function database(location: StoreLocation): Promise<Store> {
  const store = await openStore({ ...location, flushMs: 10_000, flushMaxItems: 1000 });
  open.push(store);
  return store;
}

describe.each(STORE_DIALECTS)("ArtifactStore (%s)", (dialect) => {
  /** A replica: its database (the location's) and a data dir, its own unless given. */
  async function replica(location: StoreLocation, dataDir = location.dataDir, log = recordingLog()) {
    const store = await database({ ...location, dataDir });
    const artifacts = await ArtifactStore.open({ store, dataDir, log });
    return { store, artifacts, dataDir, log };
  }
  const copiesIn = async (dataDir: string) => (await readdir(path.join(dataDir, "artifacts"))).sort();
  const rowCount = async (store: Store) =>
    Number(
      (
        await store.db
          .selectFrom("agent_artifacts")
          .select((eb) => eb.fn.countAll<number>().as("n"))
          .executeTakeFirstOrThrow()
      ).n,
    );

  it("publishes a version signed by the release key: its record and bytes in the database, a local copy per sha256", async () => {
    const location = await freshStoreLocation(dialect);
    const { store, artifacts, dataDir } = await replica(location);
    const bytes = fakeArtifact("1.4.0");
    const { record, created } = await artifacts.publish(body(bytes));
    expect(created).toBe(true);
    expect(record).toEqual({
      version: "1.4.0",
      sha256: sha(bytes),
      bytes: bytes.length,
      signature: expect.any(String),
      publishedAt: expect.any(String),
    });
    expect(verifyArtifact(artifacts.releasePublicKeyPem(), "1.4.0", sha(bytes), record.signature)).toBe(true);
    expect(verifyArtifact(artifacts.releasePublicKeyPem(), "1.4.1", sha(bytes), record.signature)).toBe(
      false,
    );
    const row = await store.db
      .selectFrom("agent_artifacts")
      .selectAll()
      .where("version", "=", "1.4.0")
      .executeTakeFirstOrThrow();
    expect(Buffer.from(row.content)).toEqual(bytes);
    expect(row).toMatchObject({
      sha256: sha(bytes),
      signature: record.signature,
      published_at: record.publishedAt,
    });
    const file = await artifacts.localFile(record);
    expect(file).toBe(path.join(dataDir, "artifacts", `${sha(bytes)}.tar.gz`));
    expect(await readFile(file)).toEqual(bytes);
    expect(await copiesIn(dataDir)).toEqual([`${sha(bytes)}.tar.gz`]);
  });

  it("lists newest first in semver order, and reads back the same after a restart", async () => {
    const location = await freshStoreLocation(dialect);
    const { artifacts } = await replica(location);
    for (const v of ["1.10.0", "1.9.0", "2.0.0-rc.2", "2.0.0-rc.10", "1.10.0-beta"])
      await artifacts.publish(body(fakeArtifact(v)));
    const order = ["2.0.0-rc.10", "2.0.0-rc.2", "1.10.0", "1.10.0-beta", "1.9.0"];
    expect((await artifacts.list()).map((r) => r.version)).toEqual(order);
    expect((await artifacts.newest())?.version).toBe("2.0.0-rc.10");
    const reopened = (await replica(location)).artifacts;
    expect(await reopened.list()).toEqual(await artifacts.list());
    expect(await reopened.get("9.9.9")).toBeNull();
    expect(await reopened.get("../../etc")).toBeNull();
    await expect(reopened.require("9.9.9")).rejects.toMatchObject({
      code: "NBF_ARTIFACT_NOT_FOUND",
      status: 404,
    });
  });

  it("takes the same bytes again as a no-op and refuses other bytes for a stored version", async () => {
    const location = await freshStoreLocation(dialect);
    const { store, artifacts, dataDir } = await replica(location);
    const first = await artifacts.publish(body(fakeArtifact("3.0.0")));
    const same = await artifacts.publish(body(fakeArtifact("3.0.0")));
    expect(same).toEqual({ record: first.record, created: false });
    const other = fakeArtifact("3.0.0", "console.log('something else')\n");
    await expect(artifacts.publish(body(other))).rejects.toMatchObject({
      code: "NBF_ARTIFACT_VERSION_EXISTS",
      status: 409,
      details: { version: "3.0.0", existing: first.record.sha256, uploaded: sha(other) },
    });
    expect(await readFile(await artifacts.localFile(first.record))).toEqual(fakeArtifact("3.0.0"));
    expect(await copiesIn(dataDir)).toEqual([`${first.record.sha256}.tar.gz`]);
    expect(await rowCount(store)).toBe(1);
  });

  it("lets exactly one of two replicas publishing one version at once win (other bytes: 409; same bytes: one created)", async () => {
    const location = await freshStoreLocation(dialect);
    const a = await replica(location);
    // B: the same database and release key, a data dir of its own (SQLite: the database's).
    const bDir = dialect === "postgres" ? makeDataDir() : location.dataDir;
    if (bDir !== location.dataDir)
      await copyFile(path.join(location.dataDir, RELEASE_KEY_FILE), path.join(bDir, RELEASE_KEY_FILE));
    const b = await replica(location, bDir);
    for (let round = 0; round < 3; round++) {
      const version = `4.${round}.0`;
      const results = await Promise.allSettled([
        a.artifacts.publish(body(fakeArtifact(version, "a\n"))),
        b.artifacts.publish(body(fakeArtifact(version, "b\n"))),
      ]);
      expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
      const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
      expect(refused.reason.code).toBe("NBF_ARTIFACT_VERSION_EXISTS");
      const won = (
        results.find((r) => r.status === "fulfilled") as PromiseFulfilledResult<{
          record: { sha256: string };
        }>
      ).value.record;
      expect((await b.artifacts.require(version)).sha256).toBe(won.sha256);
      expect((await a.artifacts.require(version)).sha256).toBe(won.sha256);
    }
    const twins = await Promise.all([
      a.artifacts.publish(body(fakeArtifact("4.9.0"))),
      b.artifacts.publish(body(fakeArtifact("4.9.0"))),
    ]);
    expect(twins.map((t) => t.created).sort()).toEqual([false, true]);
    expect(twins[0].record).toEqual(twins[1].record);
    expect(await rowCount(a.store)).toBe(4);
  });

  it("stores nothing when an upload is refused or too large", async () => {
    const location = await freshStoreLocation(dialect);
    const { store, artifacts, dataDir } = await replica(location);
    await expect(artifacts.publish(body(Buffer.from("not a tarball")))).rejects.toMatchObject({
      code: "NBF_ARTIFACT_INVALID",
      message: expect.stringContaining("not a valid gzip stream"),
    });
    // Refused at the first chunk, before a lazily opened temp file would exist: none is left.
    for (let i = 0; i < 30; i++) {
      await expect(artifacts.publish(body(fakeArtifact("5.0.0")), 100)).rejects.toMatchObject({
        code: "NBF_BODY_TOO_LARGE",
        details: { limit: 100 },
      });
    }
    await expect(artifacts.publish(body(Buffer.alloc(0)))).rejects.toMatchObject({
      code: "NBF_ARTIFACT_INVALID",
    });
    expect(await copiesIn(dataDir)).toEqual([]);
    expect(await artifacts.list()).toEqual([]);
    expect(await rowCount(store)).toBe(0);
  });

  it("keeps an artifact of nearly 64 MiB whole in the database and serves it from another replica's copy", async () => {
    const location = await freshStoreLocation(dialect);
    const a = await replica(location);
    // Random bytes do not compress: the tarball is as large as its content.
    const bytes = tarGz(
      tarEntry("manifest.json", { body: JSON.stringify({ name: "nbfleet-agent", version: "5.5.0" }) }),
      tarEntry("nbfleet-agent.mjs", { body: "export {}\n" }),
      tarEntry("blob.bin", { body: randomBytes(63 * 1024 * 1024) }),
    );
    expect(bytes.length).toBeGreaterThan(63 * 1024 * 1024);
    expect(bytes.length).toBeLessThan(64 * 1024 * 1024);
    const { record } = await a.artifacts.publish(body(bytes));
    const bDir = makeDataDir();
    const other = await ArtifactStore.open({
      store: a.store,
      dataDir: bDir,
      keyFile: path.join(location.dataDir, RELEASE_KEY_FILE),
      log: recordingLog(),
    });
    const file = await other.localFile(await other.require("5.5.0"));
    expect(file.startsWith(bDir)).toBe(true);
    expect(sha(await readFile(file))).toBe(record.sha256);
  }, 120_000);

  it("writes a replica's copy from the database once, checks it, and rewrites a damaged one", async () => {
    const location = await freshStoreLocation(dialect);
    const a = await replica(location);
    const bytes = fakeArtifact("6.0.0");
    const { record } = await a.artifacts.publish(body(bytes));
    // Another replica (a data dir of its own): no copy yet; many downloads at once, one write.
    const bDir = makeDataDir();
    const b = await ArtifactStore.open({
      store: a.store,
      dataDir: bDir,
      keyFile: path.join(location.dataDir, RELEASE_KEY_FILE),
      log: recordingLog(),
    });
    expect(await copiesIn(bDir)).toEqual([]);
    const files = await Promise.all(Array.from({ length: 50 }, () => b.localFile(record)));
    expect(new Set(files)).toEqual(new Set([path.join(bDir, "artifacts", `${record.sha256}.tar.gz`)]));
    expect(await copiesIn(bDir)).toEqual([`${record.sha256}.tar.gz`]);
    expect(await readFile(files[0]!)).toEqual(bytes);
    // Once checked, the copy is served without reading the blob again: the row's bytes changed
    // behind the store's back are not read.
    await a.store.db
      .updateTable("agent_artifacts")
      .set({ content: Buffer.alloc(bytes.length, 7) })
      .where("version", "=", "6.0.0")
      .execute();
    for (let i = 0; i < 20; i++) expect(await readFile(await b.localFile(record))).toEqual(bytes);
    await a.store.db
      .updateTable("agent_artifacts")
      .set({ content: bytes })
      .where("version", "=", "6.0.0")
      .execute();
    // A copy damaged on disk (same size) is found by a replica starting on it and rewritten.
    await writeFile(files[0]!, Buffer.alloc(bytes.length, 1));
    const c = await ArtifactStore.open({
      store: a.store,
      dataDir: bDir,
      keyFile: path.join(location.dataDir, RELEASE_KEY_FILE),
      log: recordingLog(),
    });
    expect(await readFile(await c.localFile(record))).toEqual(bytes);
    // Bytes in the database that do not match their record are never served.
    await writeFile(files[0]!, "gone");
    await a.store.db
      .updateTable("agent_artifacts")
      .set({ content: Buffer.alloc(bytes.length, 7) })
      .where("version", "=", "6.0.0")
      .execute();
    await expect(c.localFile(record)).rejects.toMatchObject({
      code: "NBF_INTERNAL",
      message: expect.stringContaining(`its record says ${bytes.length} bytes of sha256 ${record.sha256}`),
    });
    expect((await copiesIn(bDir)).filter((f) => f.startsWith(".incoming-"))).toEqual([]);
  });

  it("registers the built-in artifact once, and replaces it (with a log line) when rebuilt with other bytes", async () => {
    const location = await freshStoreLocation(dialect);
    const log = recordingLog();
    const { artifacts, dataDir } = await replica(location, location.dataDir, log);
    const builtFile = path.join(makeDataDir(), "built.tar.gz");
    await writeFile(builtFile, "the controller's own build, trusted as is");
    const info = { file: builtFile, sha256: "ignored", bytes: 0, version: "0.1.0" };
    const first = await artifacts.registerBuiltIn(info);
    expect(first).toMatchObject({ version: "0.1.0", sha256: sha(await readFile(builtFile)) });
    expect(await artifacts.registerBuiltIn(info)).toEqual(first);
    expect(artifacts.builtIn()).toEqual(first);
    expect(log.lines.filter((l) => l.level === "warn")).toEqual([]);
    expect(await copiesIn(dataDir)).toEqual([`${first!.sha256}.tar.gz`]);

    await writeFile(builtFile, "rebuilt from an edited checkout");
    const replaced = await artifacts.registerBuiltIn(info);
    expect(replaced?.sha256).toBe(sha(Buffer.from("rebuilt from an edited checkout")));
    expect(
      verifyArtifact(artifacts.releasePublicKeyPem(), "0.1.0", replaced!.sha256, replaced!.signature),
    ).toBe(true);
    expect(
      log.lines.some((l) => l.level === "warn" && /0\.1\.0 was rebuilt with other bytes/.test(l.msg)),
    ).toBe(true);
    expect(await readFile(await artifacts.localFile(replaced!), "utf8")).toBe(
      "rebuilt from an edited checkout",
    );
    // A replica asked for the record read before the rebuild (no copy of those bytes on its disk)
    // gets the bytes the version has now.
    const fresh = await ArtifactStore.open({
      store: await database(location),
      dataDir: makeDataDir(),
      keyFile: path.join(dataDir, RELEASE_KEY_FILE),
      log: recordingLog(),
    });
    expect(await readFile(await fresh.localFile(first!), "utf8")).toBe("rebuilt from an edited checkout");
    expect(artifacts.builtIn()).toEqual(replaced);
    expect(await artifacts.list()).toEqual([replaced]);

    expect(await artifacts.registerBuiltIn({ ...info, version: "dev" })).toBeNull();
    // The replaced bytes' copy goes at the next start.
    await replica(location);
    expect(await copiesIn(dataDir)).toEqual([`${replaced!.sha256}.tar.gz`]);
  });

  it("removes a crashed write's old leftovers at start, and keeps a fresh one (another process may be writing it)", async () => {
    const location = await freshStoreLocation(dialect);
    const { artifacts, dataDir } = await replica(location);
    const { record } = await artifacts.publish(body(fakeArtifact("7.0.0")));
    await artifacts.localFile(record);
    const dir = path.join(dataDir, "artifacts");
    await writeFile(path.join(dir, ".incoming-old"), "half");
    const hourAgo = new Date(Date.now() - 2 * 3600_000);
    await utimes(path.join(dir, ".incoming-old"), hourAgo, hourAgo);
    await writeFile(path.join(dir, ".incoming-fresh"), "half");
    await writeFile(path.join(dir, `${"e".repeat(64)}.tar.gz`), "no version has these bytes");
    await writeFile(path.join(dir, "notes.txt"), "not ours");
    await replica(location);
    expect(await copiesIn(dataDir)).toEqual(
      [".incoming-fresh", `${record.sha256}.tar.gz`, "notes.txt"].sort(),
    );
  });
});

describe("one release key per cluster (PostgreSQL)", () => {
  it("records the first replica's public key; refuses a replica with another key, naming its file; takes a copy of the key file", async () => {
    const location = await freshStoreLocation("postgres");
    const a = await database(location);
    const first = await ArtifactStore.open({ store: a, dataDir: location.dataDir, log: recordingLog() });
    const recorded = await a.db
      .selectFrom("cluster_settings")
      .select("value")
      .where("name", "=", RELEASE_PUBLIC_KEY_SETTING)
      .executeTakeFirstOrThrow();
    expect(recorded.value).toBe(first.releasePublicKeyPem());
    expect(recorded.value).not.toMatch(/PRIVATE/);
    const { record } = await first.publish(body(fakeArtifact("1.0.0")));

    const bDir = makeDataDir();
    const b = await database({ ...location, dataDir: bDir });
    const keyFile = path.join(bDir, RELEASE_KEY_FILE);
    const refusal = await ArtifactStore.open({ store: b, dataDir: bDir, log: recordingLog() }).catch(
      (error: Error & { code?: string }) => error,
    );
    expect(refusal).toMatchObject({ code: "NBF_CONFIG_INVALID" });
    expect((refusal as Error).message).toContain(`the release key in ${keyFile} is not the cluster's`);
    expect((refusal as Error).message).toContain(`copy the cluster's key file`);
    expect((refusal as Error).message).not.toContain(await readFile(keyFile, "utf8"));
    expect((refusal as Error).message).not.toMatch(/PRIVATE KEY/);

    await copyFile(path.join(location.dataDir, RELEASE_KEY_FILE), keyFile);
    await chmod(keyFile, 0o600);
    const second = await ArtifactStore.open({ store: b, dataDir: bDir, log: recordingLog() });
    expect(second.releasePublicKeyPem()).toBe(first.releasePublicKeyPem());
    expect(await second.require("1.0.0")).toEqual(record);
    expect(await readFile(await second.localFile(record))).toEqual(fakeArtifact("1.0.0"));
  });

  it("rotates when the recorded public key is deleted: the next replica records its key and signs every version again", async () => {
    const location = await freshStoreLocation("postgres");
    const a = await database(location);
    const before = await ArtifactStore.open({ store: a, dataDir: location.dataDir, log: recordingLog() });
    const { record } = await before.publish(body(fakeArtifact("2.0.0")));
    await rename(path.join(location.dataDir, RELEASE_KEY_FILE), path.join(location.dataDir, "old-key.pem"));
    await expect(
      ArtifactStore.open({ store: a, dataDir: location.dataDir, log: recordingLog() }),
    ).rejects.toMatchObject({ code: "NBF_CONFIG_INVALID" });
    await a.db.deleteFrom("cluster_settings").where("name", "=", RELEASE_PUBLIC_KEY_SETTING).execute();
    const log = recordingLog();
    const after = await ArtifactStore.open({ store: a, dataDir: location.dataDir, log });
    expect(after.releasePublicKeyPem()).not.toBe(before.releasePublicKeyPem());
    const again = await after.require("2.0.0");
    expect(again.signature).not.toBe(record.signature);
    expect(verifyArtifact(after.releasePublicKeyPem(), "2.0.0", record.sha256, again.signature)).toBe(true);
    expect(log.lines.map((l) => l.msg).join("\n")).toMatch(/2\.0\.0 was signed by another release key/);
    // The replica still running with the old key may not sign with it any more.
    await expect(before.publish(body(fakeArtifact("2.1.0")))).rejects.toMatchObject({
      code: "NBF_CONFIG_INVALID",
      message: expect.stringContaining("is not the cluster's"),
    });
    expect(await after.get("2.1.0")).toBeNull();
  });
});

describe("release key replaced on SQLite (one controller)", () => {
  it("adopts the new key and signs stored versions again, leaving out ones whose bytes do not match", async () => {
    const location = await freshStoreLocation("sqlite");
    const a = await database(location);
    const before = await ArtifactStore.open({ store: a, dataDir: location.dataDir, log: recordingLog() });
    const kept = (await before.publish(body(fakeArtifact("6.0.0")))).record;
    const altered = (await before.publish(body(fakeArtifact("6.1.0")))).record;
    await a.db
      .updateTable("agent_artifacts")
      .set({ content: Buffer.from("altered") })
      .where("version", "=", altered.version)
      .execute();
    await rename(path.join(location.dataDir, RELEASE_KEY_FILE), path.join(location.dataDir, "old-key.pem"));
    const log = recordingLog();
    const after = await ArtifactStore.open({ store: a, dataDir: location.dataDir, log });
    expect(after.releasePublicKeyPem()).not.toBe(before.releasePublicKeyPem());
    const again = await after.require("6.0.0");
    expect(again.signature).not.toBe(kept.signature);
    expect(verifyArtifact(after.releasePublicKeyPem(), "6.0.0", kept.sha256, again.signature)).toBe(true);
    const text = log.lines.map((l) => l.msg).join("\n");
    expect(text).toMatch(/is not the one recorded before; it is recorded now/);
    expect(text).toMatch(/6\.1\.0 does not match its record/);
  });
});
