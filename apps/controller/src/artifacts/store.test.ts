import { createHash, generateKeyPairSync } from "node:crypto";
import { chmod, mkdir, readFile, readdir, rename, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { Readable } from "node:stream";
import { verifyArtifact } from "@nbfleet/shared/artifact-signature";
import { fakeArtifact } from "@nbfleet/testkit/artifact-tarball";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { describe, expect, it } from "vitest";
import { RELEASE_KEY_FILE, ensureReleaseKey } from "./release-key.js";
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

describe("ArtifactStore", () => {
  it("publishes a version signed by the release key, into <data-dir>/artifacts/<version>/", async () => {
    const dataDir = makeDataDir();
    const store = await ArtifactStore.open({ dataDir, log: recordingLog() });
    const bytes = fakeArtifact("1.4.0");
    const { record, created } = await store.publish(body(bytes));
    expect(created).toBe(true);
    expect(record).toMatchObject({ version: "1.4.0", sha256: sha(bytes), bytes: bytes.length });
    expect(record.file).toBe(path.join(dataDir, "artifacts", "1.4.0", "nbfleet-agent.tar.gz"));
    expect(await readFile(record.file)).toEqual(bytes);
    expect(verifyArtifact(store.releasePublicKeyPem(), "1.4.0", sha(bytes), record.signature)).toBe(true);
    expect(verifyArtifact(store.releasePublicKeyPem(), "1.4.1", sha(bytes), record.signature)).toBe(false);
    const onDisk = JSON.parse(
      await readFile(path.join(dataDir, "artifacts", "1.4.0", "artifact.json"), "utf8"),
    );
    expect(onDisk).toEqual({
      version: "1.4.0",
      sha256: sha(bytes),
      bytes: bytes.length,
      signature: record.signature,
      publishedAt: record.publishedAt,
    });
    expect(await readdir(path.join(dataDir, "artifacts"))).toEqual(["1.4.0"]);
  });

  it("lists newest first in semver order, and reads back the same after a restart", async () => {
    const dataDir = makeDataDir();
    const store = await ArtifactStore.open({ dataDir, log: recordingLog() });
    for (const v of ["1.10.0", "1.9.0", "2.0.0-rc.2", "2.0.0-rc.10", "1.10.0-beta"])
      await store.publish(body(fakeArtifact(v)));
    const order = ["2.0.0-rc.10", "2.0.0-rc.2", "1.10.0", "1.10.0-beta", "1.9.0"];
    expect((await store.list()).map((r) => r.version)).toEqual(order);
    expect((await store.newest())?.version).toBe("2.0.0-rc.10");
    const reopened = await ArtifactStore.open({ dataDir, log: recordingLog() });
    expect(await reopened.list()).toEqual(await store.list());
    expect(await reopened.get("9.9.9")).toBeNull();
    expect(await reopened.get("../../etc")).toBeNull();
    await expect(reopened.require("9.9.9")).rejects.toMatchObject({
      code: "NBF_ARTIFACT_NOT_FOUND",
      status: 404,
    });
  });

  it("takes the same bytes again as a no-op and refuses other bytes for a stored version", async () => {
    const dataDir = makeDataDir();
    const store = await ArtifactStore.open({ dataDir, log: recordingLog() });
    const first = await store.publish(body(fakeArtifact("3.0.0")));
    const same = await store.publish(body(fakeArtifact("3.0.0")));
    expect(same).toEqual({ record: first.record, created: false });
    const other = fakeArtifact("3.0.0", "console.log('something else')\n");
    await expect(store.publish(body(other))).rejects.toMatchObject({
      code: "NBF_ARTIFACT_VERSION_EXISTS",
      status: 409,
      details: { version: "3.0.0", existing: first.record.sha256, uploaded: sha(other) },
    });
    expect(await readFile(first.record.file)).toEqual(fakeArtifact("3.0.0"));
    expect(await readdir(path.join(dataDir, "artifacts"))).toEqual(["3.0.0"]);
  });

  it("lets exactly one of two racing uploads of one version with different bytes win", async () => {
    const dataDir = makeDataDir();
    const store = await ArtifactStore.open({ dataDir, log: recordingLog() });
    const results = await Promise.allSettled([
      store.publish(body(fakeArtifact("4.0.0", "a\n"))),
      store.publish(body(fakeArtifact("4.0.0", "b\n"))),
    ]);
    expect(results.map((r) => r.status).sort()).toEqual(["fulfilled", "rejected"]);
    const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
    expect(refused.reason.code).toBe("NBF_ARTIFACT_VERSION_EXISTS");
    expect(await readdir(path.join(dataDir, "artifacts"))).toEqual(["4.0.0"]);
  });

  it("stores nothing when an upload is refused or too large", async () => {
    const dataDir = makeDataDir();
    const store = await ArtifactStore.open({ dataDir, log: recordingLog() });
    await expect(store.publish(body(Buffer.from("not a tarball")))).rejects.toMatchObject({
      code: "NBF_ARTIFACT_INVALID",
      message: expect.stringContaining("not a valid gzip stream"),
    });
    await expect(store.publish(body(fakeArtifact("5.0.0")), 100)).rejects.toMatchObject({
      code: "NBF_BODY_TOO_LARGE",
      details: { limit: 100 },
    });
    await expect(store.publish(body(Buffer.alloc(0)))).rejects.toMatchObject({
      code: "NBF_ARTIFACT_INVALID",
    });
    expect(await readdir(path.join(dataDir, "artifacts"))).toEqual([]);
    expect(await store.list()).toEqual([]);
  });

  it("registers the built-in artifact once, and replaces it (with a log line) when rebuilt with other bytes", async () => {
    const dataDir = makeDataDir();
    const log = recordingLog();
    const store = await ArtifactStore.open({ dataDir, log });
    const builtFile = path.join(dataDir, "built.tar.gz");
    await writeFile(builtFile, "the controller's own build, trusted as is");
    const info = { file: builtFile, sha256: "ignored", bytes: 0, version: "0.1.0" };
    const first = await store.registerBuiltIn(info);
    expect(first).toMatchObject({ version: "0.1.0", sha256: sha(await readFile(builtFile)) });
    expect(await store.registerBuiltIn(info)).toEqual(first);
    expect(store.builtIn()).toEqual(first);
    expect(log.lines.filter((l) => l.level === "warn")).toEqual([]);

    await writeFile(builtFile, "rebuilt from an edited checkout");
    const replaced = await store.registerBuiltIn(info);
    expect(replaced?.sha256).toBe(sha(Buffer.from("rebuilt from an edited checkout")));
    expect(verifyArtifact(store.releasePublicKeyPem(), "0.1.0", replaced!.sha256, replaced!.signature)).toBe(
      true,
    );
    expect(
      log.lines.some((l) => l.level === "warn" && /0\.1\.0 was rebuilt with other bytes/.test(l.msg)),
    ).toBe(true);
    expect(await readFile(replaced!.file, "utf8")).toBe("rebuilt from an edited checkout");
    expect(store.builtIn()).toEqual(replaced);
    expect(await readdir(path.join(dataDir, "artifacts"))).toEqual(["0.1.0"]);

    expect(await store.registerBuiltIn({ ...info, version: "dev" })).toBeNull();
  });

  it("signs stored versions again when the release key was replaced, and leaves out altered ones", async () => {
    const dataDir = makeDataDir();
    const store = await ArtifactStore.open({ dataDir, log: recordingLog() });
    const kept = (await store.publish(body(fakeArtifact("6.0.0")))).record;
    const altered = (await store.publish(body(fakeArtifact("6.1.0")))).record;
    await writeFile(altered.file, "altered on disk");
    await rename(path.join(dataDir, RELEASE_KEY_FILE), path.join(dataDir, "old-key.pem"));
    const log = recordingLog();
    const reopened = await ArtifactStore.open({ dataDir, log });
    expect(reopened.releasePublicKeyPem()).not.toBe(store.releasePublicKeyPem());
    const again = await reopened.require("6.0.0");
    expect(again.signature).not.toBe(kept.signature);
    expect(verifyArtifact(reopened.releasePublicKeyPem(), "6.0.0", kept.sha256, again.signature)).toBe(true);
    expect(log.lines.map((l) => l.msg).join("\n")).toMatch(/6\.1\.0 does not match its record/);
  });

  it("shows a version another process published on the shared data dir (replicas)", async () => {
    const dataDir = makeDataDir();
    const one = await ArtifactStore.open({ dataDir, log: recordingLog() });
    const two = await ArtifactStore.open({ dataDir, log: recordingLog() });
    expect(one.releasePublicKeyPem()).toBe(two.releasePublicKeyPem());
    expect(await two.list()).toEqual([]);
    const { record } = await one.publish(body(fakeArtifact("8.1.0")));
    expect(await two.get("8.1.0")).toEqual(record);
    await expect(two.publish(body(fakeArtifact("8.1.0", "other\n")))).rejects.toMatchObject({
      code: "NBF_ARTIFACT_VERSION_EXISTS",
    });
  });

  it("ignores a crashed upload's leftovers and records that do not describe their version", async () => {
    const dataDir = makeDataDir();
    const store = await ArtifactStore.open({ dataDir, log: recordingLog() });
    await store.publish(body(fakeArtifact("7.0.0")));
    await mkdir(path.join(dataDir, "artifacts", ".incoming-deadbeef"));
    await mkdir(path.join(dataDir, "artifacts", "7.1.0"));
    await writeFile(path.join(dataDir, "artifacts", "7.1.0", "artifact.json"), '{"version":"7.0.0"}');
    const log = recordingLog();
    const reopened = await ArtifactStore.open({ dataDir, log });
    expect((await reopened.list()).map((r) => r.version)).toEqual(["7.0.0"]);
    expect(log.lines.map((l) => l.msg).join("\n")).toMatch(/7\.1\.0 is left out/);
  });
});
