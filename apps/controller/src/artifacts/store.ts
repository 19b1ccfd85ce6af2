/**
 * The agent artifacts as versions, a cluster-wide catalog: each version's record and its bytes
 * are a row of `agent_artifacts` in the database every replica shares, signed with the
 * cluster's release key (cluster-key.ts). Each replica serves downloads from a local copy
 * (`<data-dir>/artifacts/<sha256>.tar.gz`, local-copies.ts) written from the row when first
 * needed.
 *
 * A version, once stored, keeps its bytes: publishing it again with the same bytes is a no-op,
 * with other bytes a refusal (NBF_ARTIFACT_VERSION_EXISTS); of two replicas publishing one
 * version at once, the row's primary key lets exactly one win. The one exception is the
 * controller's own built-in artifact (registerBuiltIn): a checkout that rebuilt the same version
 * with other bytes replaces it, and says so in the log.
 */
import { createHash } from "node:crypto";
import { mkdir, open, readFile, rm } from "node:fs/promises";
import path from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { ARTIFACT_MAX_BYTES, inspectArtifact } from "@nbfleet/scripts";
import {
  compareVersions,
  isArtifactVersion,
  signArtifact,
  verifyArtifact,
} from "@nbfleet/shared/artifact-signature";
import type { Kysely } from "kysely";
import type { ArtifactInfo } from "../artifact-info.js";
import { NbfError } from "../errors.js";
import type { Dialect } from "../store/db.js";
import type { Database } from "../store/schema.js";
import type { ArtifactCatalog, ArtifactRecord } from "./catalog.js";
import { checkClusterReleaseKey } from "./cluster-key.js";
import { type CopyWanted, LocalCopies } from "./local-copies.js";
import { RELEASE_KEY_FILE, type ReleaseKey, ensureReleaseKeyFile } from "./release-key.js";

export const ARTIFACTS_DIR = "artifacts";
/** Attempts at registering the built-in artifact when other replicas change its row meanwhile. */
const BUILT_IN_ATTEMPTS = 3;

interface StoreLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export interface PublishResult {
  record: ArtifactRecord;
  /** False when this version was already stored with these very bytes. */
  created: boolean;
}

export interface ArtifactStoreOptions {
  store: { db: Kysely<Database>; dialect: Dialect };
  dataDir: string;
  /** The release key file (default `<dataDir>/release-key.pem`), made when missing. */
  keyFile?: string;
  /** The key itself, already read (tests). */
  key?: ReleaseKey;
  log: StoreLog;
}

const RECORD_COLUMNS = ["version", "sha256", "bytes", "signature", "published_at"] as const;
type Row = { version: string; sha256: string; bytes: number; signature: string; published_at: string };
const toRecord = (row: Row): ArtifactRecord => ({
  version: row.version,
  sha256: row.sha256,
  bytes: Number(row.bytes),
  signature: row.signature,
  publishedAt: row.published_at,
});

export class ArtifactStore implements ArtifactCatalog {
  private builtInRecord: ArtifactRecord | null = null;

  private constructor(
    private readonly cluster: ArtifactStoreOptions["store"],
    readonly copies: LocalCopies,
    private readonly key: ReleaseKey,
    private readonly log: StoreLog,
  ) {}

  /**
   * Reads (or makes) the release key, checks it is the cluster's (NBF_CONFIG_INVALID when the
   * database records another), opens `<dataDir>/artifacts` for the local copies.
   */
  static async open(options: ArtifactStoreOptions): Promise<ArtifactStore> {
    const key =
      options.key ??
      (await ensureReleaseKeyFile(options.keyFile ?? path.join(options.dataDir, RELEASE_KEY_FILE)));
    if (key.created) options.log.info({ file: key.file }, "made the release key that signs agent artifacts");
    const check = await checkClusterReleaseKey(options.store, key);
    if (check.replaced) {
      options.log.warn(
        { file: key.file },
        `the release key in ${key.file} is not the one recorded before; it is recorded now, and the stored agent artifacts are signed with it (guests bootstrapped with the old key refuse upgrades until bootstrapped again)`,
      );
    }
    const dir = path.join(options.dataDir, ARTIFACTS_DIR);
    await mkdir(dir, { recursive: true, mode: 0o755 });
    const { db } = options.store;
    const copies = new LocalCopies(dir, (wanted) => loadContent(db, wanted));
    const store = new ArtifactStore(options.store, copies, key, options.log);
    const listed = await copies.list();
    await store.resignStale();
    await copies.prune(listed, new Set((await store.list()).map((r) => r.sha256)));
    return store;
  }

  private get db(): Kysely<Database> {
    return this.cluster.db;
  }

  /** The controller's own artifact (served at /v1/agent/artifact) as registered at start, if any. */
  builtIn(): ArtifactRecord | null {
    return this.builtInRecord;
  }

  releasePublicKeyPem(): string {
    return this.key.publicKeyPem;
  }

  /**
   * Read from the database at every call (a few short rows, never the bytes): a version another
   * replica published a moment ago is listed at once.
   */
  async list(): Promise<ArtifactRecord[]> {
    const rows = await this.db.selectFrom("agent_artifacts").select(RECORD_COLUMNS).execute();
    return rows.map(toRecord).sort((a, b) => compareVersions(b.version, a.version));
  }

  async get(version: string): Promise<ArtifactRecord | null> {
    if (!isArtifactVersion(version)) return null;
    return this.read(version);
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

  /** The record's tarball on this replica's disk (copied from the database the first time). */
  async localFile(record: CopyWanted): Promise<string> {
    try {
      return await this.copies.ensure(record);
    } catch (error) {
      // Replaced meanwhile (a rebuilt built-in): the fresh record's bytes.
      if (!(error instanceof NbfError && error.code === "NBF_ARTIFACT_NOT_FOUND")) throw error;
      const fresh = await this.require(record.version);
      if (fresh.sha256 === record.sha256) throw error;
      return this.copies.ensure(fresh);
    }
  }

  /**
   * Takes an upload: the bytes (at most `maxBytes`) go to a temp file, are checked
   * (inspectArtifact), signed and written as the version's row; the temp file becomes the local
   * copy. On any refusal nothing stays behind.
   */
  async publish(body: Readable, maxBytes = ARTIFACT_MAX_BYTES): Promise<PublishResult> {
    const file = this.copies.tempName();
    try {
      const { sha256, bytes } = await receive(body, file, maxBytes);
      if (bytes === 0) throw new NbfError("NBF_ARTIFACT_INVALID", { problem: "the body is empty" });
      const inspected = await inspectArtifact(file).catch((error: unknown) => {
        const e = error as { code?: string; message?: string };
        if (e.code === "NBF_ARTIFACT_INVALID")
          throw new NbfError("NBF_ARTIFACT_INVALID", { problem: e.message });
        throw error;
      });
      const result = await this.insert(inspected.version, sha256, () => readFile(file));
      await this.copies.adopt(file, sha256);
      return result;
    } finally {
      await rm(file, { force: true });
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
    const content = await readFile(artifact.file);
    const sha256 = createHash("sha256").update(content).digest("hex");
    for (let attempt = 1; ; attempt++) {
      const existing = await this.read(artifact.version);
      let record: ArtifactRecord | null = null;
      if (!existing) {
        record = await this.insert(artifact.version, sha256, async () => content).then(
          (r) => r.record,
          (error: unknown) => {
            if (error instanceof NbfError && error.code === "NBF_ARTIFACT_VERSION_EXISTS") return null;
            throw error;
          },
        );
      } else if (existing.sha256 === sha256) {
        record = existing;
      } else {
        this.log.warn(
          { version: artifact.version, stored: existing.sha256, builtIn: sha256 },
          `the built-in agent artifact ${artifact.version} was rebuilt with other bytes (sha256 ${existing.sha256} → ${sha256}); it replaces the stored one (a checkout's development path: publish a new version for a fleet)`,
        );
        record = await this.replace(existing, sha256, content);
      }
      if (record) {
        await this.copies.copyIn(artifact.file, sha256);
        this.builtInRecord = record;
        return record;
      }
      // Another replica wrote the row between our read and write: look again.
      if (attempt >= BUILT_IN_ATTEMPTS) {
        throw new NbfError("NBF_INTERNAL", {
          reason: `registering the built-in agent artifact ${artifact.version}: its row kept changing`,
        });
      }
    }
  }

  /** The version's row as inserted now, or the one already there (same bytes) / refused (other bytes). */
  private async insert(
    version: string,
    sha256: string,
    content: () => Promise<Buffer>,
  ): Promise<PublishResult> {
    const existing = await this.read(version);
    if (existing) return sameOrRefuse(existing, sha256);
    // The cluster's key may have been rotated since this replica started: it must not sign with
    // a key the guests no longer trust (refused like a start would be).
    await checkClusterReleaseKey(this.cluster, this.key);
    const bytes = await content();
    const row: Row = {
      version,
      sha256,
      bytes: bytes.length,
      signature: signArtifact(this.key.privateKeyPem, version, sha256),
      published_at: new Date().toISOString(),
    };
    // One statement: of two replicas inserting the version at once, the primary key lets one in.
    const inserted = await this.db
      .insertInto("agent_artifacts")
      .values({ ...row, content: bytes })
      .onConflict((conflict) => conflict.column("version").doNothing())
      .returning("version")
      .executeTakeFirst();
    if (inserted) return { record: toRecord(row), created: true };
    const winner = await this.read(version);
    if (!winner) throw new NbfError("NBF_INTERNAL", { reason: `agent artifact ${version} vanished` });
    return sameOrRefuse(winner, sha256);
  }

  /** The built-in's rebuild: the row changes only if it still holds `existing`'s bytes. */
  private async replace(
    existing: ArtifactRecord,
    sha256: string,
    content: Buffer,
  ): Promise<ArtifactRecord | null> {
    const row: Row = {
      version: existing.version,
      sha256,
      bytes: content.length,
      signature: signArtifact(this.key.privateKeyPem, existing.version, sha256),
      published_at: new Date().toISOString(),
    };
    const updated = await this.db
      .updateTable("agent_artifacts")
      .set({ ...row, content })
      .where("version", "=", existing.version)
      .where("sha256", "=", existing.sha256)
      .returning("version")
      .executeTakeFirst();
    return updated ? toRecord(row) : null;
  }

  private async read(version: string): Promise<ArtifactRecord | null> {
    const row = await this.db
      .selectFrom("agent_artifacts")
      .select(RECORD_COLUMNS)
      .where("version", "=", version)
      .executeTakeFirst();
    return row ? toRecord(row) : null;
  }

  /**
   * Records signed by another key (the cluster's key was rotated) would be refused by every
   * guest that trusts this one: each whose bytes still have the recorded sha256 is signed again.
   * The signature is deterministic (Ed25519), so replicas doing this at once write the same.
   */
  private async resignStale(): Promise<void> {
    for (const record of await this.list()) {
      if (verifyArtifact(this.key.publicKeyPem, record.version, record.sha256, record.signature)) continue;
      const content = await loadContent(this.db, record);
      const actual = content ? createHash("sha256").update(content).digest("hex") : undefined;
      if (actual !== record.sha256) {
        this.log.warn(
          { version: record.version },
          `agent artifact ${record.version} does not match its record (sha256 ${actual ?? "missing"}, recorded ${record.sha256}); left unsigned by this key`,
        );
        continue;
      }
      await this.db
        .updateTable("agent_artifacts")
        .set({ signature: signArtifact(this.key.privateKeyPem, record.version, record.sha256) })
        .where("version", "=", record.version)
        .where("sha256", "=", record.sha256)
        .execute();
      this.log.warn(
        { version: record.version },
        `agent artifact ${record.version} was signed by another release key; signed again with this one`,
      );
    }
  }
}

function sameOrRefuse(existing: ArtifactRecord, sha256: string): PublishResult {
  if (existing.sha256 === sha256) return { record: existing, created: false };
  throw new NbfError("NBF_ARTIFACT_VERSION_EXISTS", {
    version: existing.version,
    existing: existing.sha256,
    uploaded: sha256,
  });
}

/** The bytes of `wanted` (version and sha256 both), or null when the row holds others now. */
async function loadContent(
  db: Kysely<Database>,
  wanted: { version: string; sha256: string },
): Promise<Buffer | null> {
  const row = await db
    .selectFrom("agent_artifacts")
    .select("content")
    .where("version", "=", wanted.version)
    .where("sha256", "=", wanted.sha256)
    .executeTakeFirst();
  if (!row) return null;
  return Buffer.isBuffer(row.content) ? row.content : Buffer.from(row.content);
}

/** Streams `body` into `file`, hashing it; more than `maxBytes` is NBF_BODY_TOO_LARGE. */
async function receive(
  body: Readable,
  file: string,
  maxBytes: number,
): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash("sha256");
  let bytes = 0;
  // Opened before any byte is read: a refusal mid-stream must find the file there to remove
  // (a stream's own lazy open could create it after the caller's cleanup).
  const out = (await open(file, "wx", 0o644)).createWriteStream();
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
