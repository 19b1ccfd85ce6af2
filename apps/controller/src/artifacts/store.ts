/**
 * The agent artifacts this controller keeps, as versions on disk:
 *
 *   <data-dir>/artifacts/<version>/nbfleet-agent.tar.gz   the tarball (0644: guests fetch it)
 *   <data-dir>/artifacts/<version>/artifact.json          {version, sha256, bytes, signature, publishedAt}
 *
 * A version is prepared in `.incoming-*` beside them and renamed into place whole, so a crash
 * never leaves half a version. A version, once stored, keeps its bytes: publishing it again
 * with the same bytes is a no-op, with other bytes a refusal (NBF_ARTIFACT_VERSION_EXISTS).
 * The one exception is the controller's own built-in artifact (registerBuiltIn): a checkout
 * that rebuilt the same version with other bytes replaces it, and says so in the log.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { copyFile, mkdir, readFile, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ARTIFACT_FILE, ARTIFACT_MAX_BYTES, inspectArtifact } from "@nbfleet/scripts";
import {
  compareVersions,
  isArtifactVersion,
  signArtifact,
  verifyArtifact,
} from "@nbfleet/shared/artifact-signature";
import type { ArtifactInfo } from "../artifact-info.js";
import { NbfError } from "../errors.js";
import type { ArtifactCatalog, ArtifactRecord } from "./catalog.js";
import { type ReleaseKey, ensureReleaseKey } from "./release-key.js";

export const ARTIFACTS_DIR = "artifacts";
const RECORD_FILE = "artifact.json";
const INCOMING_PREFIX = ".incoming-";
/** An `.incoming-*` dir older than this is a crashed upload's leftover, removed at start. */
const STALE_INCOMING_MS = 60 * 60 * 1000;
const LIST_MAX_AGE_MS = 2000;

interface StoreLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface PublishResult {
  record: ArtifactRecord;
  /** False when this version was already stored with these very bytes. */
  created: boolean;
}

export class ArtifactStore implements ArtifactCatalog {
  private cache: { mtimeMs: number; readAt: number; records: ArtifactRecord[] } | undefined;
  private builtInRecord: ArtifactRecord | null = null;

  private constructor(
    readonly dir: string,
    private readonly key: ReleaseKey,
    private readonly log: StoreLog,
  ) {}

  /** Opens (and creates) `<dataDir>/artifacts`, with the release key (made at the first start). */
  static async open(options: { dataDir: string; log: StoreLog; key?: ReleaseKey }): Promise<ArtifactStore> {
    const key = options.key ?? (await ensureReleaseKey(options.dataDir));
    if (key.created) options.log.info({ file: key.file }, "made the release key that signs agent artifacts");
    const dir = path.join(options.dataDir, ARTIFACTS_DIR);
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const store = new ArtifactStore(dir, key, options.log);
    await store.removeStaleIncoming();
    await store.resignStale();
    return store;
  }

  /** The controller's own artifact (served at /v1/agent/artifact) as registered at start, if any. */
  builtIn(): ArtifactRecord | null {
    return this.builtInRecord;
  }

  releasePublicKeyPem(): string {
    return this.key.publicKeyPem;
  }

  async list(): Promise<ArtifactRecord[]> {
    const { mtimeMs } = await stat(this.dir);
    // Re-read when the directory changed, and at least every LIST_MAX_AGE_MS: replicas sharing
    // the data dir publish too, and a coarse mtime could hide a change made within its tick.
    if (this.cache?.mtimeMs === mtimeMs && Date.now() - this.cache.readAt < LIST_MAX_AGE_MS) {
      return this.cache.records;
    }
    const readAt = Date.now();
    const records: ArtifactRecord[] = [];
    for (const name of await readdir(this.dir)) {
      if (!isArtifactVersion(name)) continue;
      const record = await this.readRecord(name);
      if (record) records.push(record);
    }
    records.sort((a, b) => compareVersions(b.version, a.version));
    this.cache = { mtimeMs, readAt, records };
    return records;
  }

  async get(version: string): Promise<ArtifactRecord | null> {
    if (!isArtifactVersion(version)) return null;
    return (await this.list()).find((r) => r.version === version) ?? null;
  }

  async newest(): Promise<ArtifactRecord | null> {
    return (await this.list())[0] ?? null;
  }

  /** Like get, but a missing version is NBF_ARTIFACT_NOT_FOUND. */
  async require(version: string): Promise<ArtifactRecord> {
    const record = await this.get(version);
    if (!record) throw new NbfError("NBF_ARTIFACT_NOT_FOUND", { version });
    return record;
  }

  /**
   * Takes an upload: the bytes (at most `maxBytes`) go to a fresh `.incoming-*` dir, are checked
   * (inspectArtifact), signed and renamed into place. On any refusal nothing stays behind.
   */
  async publish(body: Readable, maxBytes = ARTIFACT_MAX_BYTES): Promise<PublishResult> {
    const incoming = await this.incomingDir();
    try {
      const file = path.join(incoming, ARTIFACT_FILE);
      const { sha256, bytes } = await receive(body, file, maxBytes);
      if (bytes === 0) throw new NbfError("NBF_ARTIFACT_INVALID", { problem: "the body is empty" });
      const inspected = await inspectArtifact(file).catch((error: unknown) => {
        const e = error as { code?: string; message?: string };
        if (e.code === "NBF_ARTIFACT_INVALID")
          throw new NbfError("NBF_ARTIFACT_INVALID", { problem: e.message });
        throw error;
      });
      return await this.commit(incoming, { version: inspected.version, sha256, bytes });
    } finally {
      await rm(incoming, { recursive: true, force: true });
    }
  }

  /**
   * Stores the artifact this controller serves at /v1/agent/artifact under its version (trusted:
   * the controller built it or shipped with it). The same bytes already stored: nothing to do.
   */
  async registerBuiltIn(artifact: ArtifactInfo): Promise<ArtifactRecord | null> {
    if (!isArtifactVersion(artifact.version)) {
      this.log.warn(
        { version: artifact.version },
        `the built-in agent artifact's version ${JSON.stringify(artifact.version)} is not an artifact version; it is not in the catalog`,
      );
      return null;
    }
    const sha256 = await sha256File(artifact.file);
    const existing = await this.get(artifact.version);
    if (existing?.sha256 === sha256) {
      this.builtInRecord = existing;
      return existing;
    }
    const incoming = await this.incomingDir();
    try {
      await copyFile(artifact.file, path.join(incoming, ARTIFACT_FILE));
      const { size: bytes } = await stat(path.join(incoming, ARTIFACT_FILE));
      if (existing) {
        this.log.warn(
          { version: artifact.version, stored: existing.sha256, builtIn: sha256 },
          `the built-in agent artifact ${artifact.version} was rebuilt with other bytes (sha256 ${existing.sha256} → ${sha256}); it replaces the stored one (a checkout's development path: publish a new version for a fleet)`,
        );
        await this.removeVersion(artifact.version);
      }
      const { record } = await this.commit(incoming, { version: artifact.version, sha256, bytes });
      this.builtInRecord = record;
      return record;
    } finally {
      await rm(incoming, { recursive: true, force: true });
    }
  }

  /** Signs, writes the record, renames `incoming` into place; a concurrent twin is compared. */
  private async commit(
    incoming: string,
    artifact: { version: string; sha256: string; bytes: number },
  ): Promise<PublishResult> {
    const existing = await this.get(artifact.version);
    if (existing) return this.sameOrRefuse(existing, artifact.sha256);
    const stored = {
      version: artifact.version,
      sha256: artifact.sha256,
      bytes: artifact.bytes,
      signature: signArtifact(this.key.privateKeyPem, artifact.version, artifact.sha256),
      publishedAt: new Date().toISOString(),
    };
    await writeFile(path.join(incoming, RECORD_FILE), `${JSON.stringify(stored, null, 2)}\n`, {
      mode: 0o644,
    });
    const target = path.join(this.dir, artifact.version);
    try {
      await rename(incoming, target);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== "ENOTEMPTY" && code !== "EEXIST") throw error;
      this.cache = undefined;
      const twin = await this.get(artifact.version);
      if (!twin) throw error;
      return this.sameOrRefuse(twin, artifact.sha256);
    }
    this.cache = undefined;
    return { record: { ...stored, file: path.join(target, ARTIFACT_FILE) }, created: true };
  }

  private sameOrRefuse(existing: ArtifactRecord, sha256: string): PublishResult {
    if (existing.sha256 === sha256) return { record: existing, created: false };
    throw new NbfError("NBF_ARTIFACT_VERSION_EXISTS", {
      version: existing.version,
      existing: existing.sha256,
      uploaded: sha256,
    });
  }

  private async readRecord(version: string): Promise<ArtifactRecord | null> {
    const dir = path.join(this.dir, version);
    try {
      const parsed = JSON.parse(
        await readFile(path.join(dir, RECORD_FILE), "utf8"),
      ) as Partial<ArtifactRecord>;
      const valid =
        parsed.version === version &&
        typeof parsed.sha256 === "string" &&
        /^[0-9a-f]{64}$/.test(parsed.sha256) &&
        typeof parsed.bytes === "number" &&
        typeof parsed.signature === "string" &&
        typeof parsed.publishedAt === "string";
      if (!valid) throw new Error(`${RECORD_FILE} does not describe version ${version}`);
      return {
        version,
        sha256: parsed.sha256!,
        bytes: parsed.bytes!,
        signature: parsed.signature!,
        publishedAt: parsed.publishedAt!,
        file: path.join(dir, ARTIFACT_FILE),
      };
    } catch (error) {
      this.log.warn(
        { dir, err: error },
        `agent artifact ${version} is left out: ${(error as Error).message}`,
      );
      return null;
    }
  }

  private async removeVersion(version: string): Promise<void> {
    const aside = path.join(this.dir, `${INCOMING_PREFIX}replaced-${randomBytes(6).toString("hex")}`);
    await rename(path.join(this.dir, version), aside);
    this.cache = undefined;
    await rm(aside, { recursive: true, force: true });
  }

  private async incomingDir(): Promise<string> {
    const dir = path.join(this.dir, `${INCOMING_PREFIX}${randomBytes(8).toString("hex")}`);
    await mkdir(dir, { mode: 0o755 });
    return dir;
  }

  private async removeStaleIncoming(): Promise<void> {
    for (const name of await readdir(this.dir)) {
      if (!name.startsWith(INCOMING_PREFIX)) continue;
      const dir = path.join(this.dir, name);
      const info = await stat(dir).catch(() => undefined);
      if (info && Date.now() - info.mtimeMs > STALE_INCOMING_MS)
        await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Records signed by another key (the key file was replaced) would be refused by every guest
   * that trusts this one: each whose tarball still has its recorded sha256 is signed again.
   */
  private async resignStale(): Promise<void> {
    for (const record of await this.list()) {
      if (verifyArtifact(this.key.publicKeyPem, record.version, record.sha256, record.signature)) continue;
      const actual = await sha256File(record.file).catch(() => undefined);
      if (actual !== record.sha256) {
        this.log.warn(
          { version: record.version, file: record.file },
          `agent artifact ${record.version} does not match its record (sha256 ${actual ?? "unreadable"}, recorded ${record.sha256}); left unsigned by this key`,
        );
        continue;
      }
      const { file: _file, ...stored } = record;
      const signature = signArtifact(this.key.privateKeyPem, record.version, record.sha256);
      const recordFile = path.join(this.dir, record.version, RECORD_FILE);
      const temp = `${recordFile}.${process.pid}.tmp`;
      await writeFile(temp, `${JSON.stringify({ ...stored, signature }, null, 2)}\n`, { mode: 0o644 });
      await rename(temp, recordFile);
      this.log.warn(
        { version: record.version },
        `agent artifact ${record.version} was signed by another release key; signed again with this controller's`,
      );
    }
    this.cache = undefined;
  }
}

/** Streams `body` into `file`, hashing it; more than `maxBytes` is NBF_BODY_TOO_LARGE. */
async function receive(
  body: Readable,
  file: string,
  maxBytes: number,
): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  const out = createWriteStream(file, { mode: 0o644 });
  await pipeline(
    body,
    async function* (source: AsyncIterable<Buffer>) {
      for await (const chunk of source) {
        bytes += chunk.length;
        if (bytes > maxBytes) throw new NbfError("NBF_BODY_TOO_LARGE", { limit: maxBytes });
        hash.update(chunk);
        yield chunk;
      }
    },
    out,
  );
  return { sha256: hash.digest("hex"), bytes };
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
