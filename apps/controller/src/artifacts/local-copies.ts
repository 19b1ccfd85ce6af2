/**
 * This replica's copies of the catalog's tarballs, `<data-dir>/artifacts/<sha256>.tar.gz`, to
 * serve downloads from: the bytes live in the database (cluster-wide), and a copy is written
 * from there the first time this replica needs one (to a temp name, checked against its sha256,
 * then renamed into place), so ten thousand downloads read the blob once. Copies are named by
 * content, so replicas sharing a data dir share them and a replaced version never serves stale
 * bytes under a fresh record.
 */
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { NbfError } from "../errors.js";

export const INCOMING_PREFIX = ".incoming-";
const COPY_NAME = /^([0-9a-f]{64})\.tar\.gz$/;
/** A temp file older than this is a crashed write's leftover (another process may be writing a fresh one). */
const STALE_TEMP_MS = 60 * 60 * 1000;

export interface CopyWanted {
  version: string;
  sha256: string;
  bytes: number;
}

export class LocalCopies {
  /** Copies checked against their sha256 by this process (a copy is checked once, then trusted). */
  private readonly checked = new Set<string>();
  private readonly writing = new Map<string, Promise<string>>();

  constructor(
    readonly dir: string,
    /** The tarball's bytes from the database; null when the version no longer has these bytes. */
    private readonly load: (wanted: CopyWanted) => Promise<Buffer | null>,
  ) {}

  pathOf(sha256: string): string {
    return path.join(this.dir, `${sha256}.tar.gz`);
  }

  /** The local copy of `wanted`, written from the database when missing or damaged. */
  async ensure(wanted: CopyWanted): Promise<string> {
    const file = this.pathOf(wanted.sha256);
    const size = await stat(file).then(
      (s) => (s.isFile() ? s.size : -1),
      () => -1,
    );
    if (size === wanted.bytes && this.checked.has(wanted.sha256)) return file;
    if (size === wanted.bytes && (await sha256File(file)) === wanted.sha256) {
      this.checked.add(wanted.sha256);
      return file;
    }
    this.checked.delete(wanted.sha256);
    // Concurrent first downloads of one version wait for one write.
    let pending = this.writing.get(wanted.sha256);
    if (!pending) {
      pending = this.writeFromDatabase(wanted).finally(() => this.writing.delete(wanted.sha256));
      this.writing.set(wanted.sha256, pending);
    }
    return pending;
  }

  /** Takes `file`, whose content is known to hash to `sha256`, as the copy (renamed: it is used up). */
  async adopt(file: string, sha256: string): Promise<void> {
    await rename(file, this.pathOf(sha256));
    this.checked.add(sha256);
  }

  /** Copies `file` (hashing to `sha256`) in as the copy, unless one is there already. */
  async copyIn(file: string, sha256: string): Promise<void> {
    const temp = this.tempName();
    try {
      await copyFile(file, temp);
      await this.adopt(temp, sha256);
    } finally {
      await rm(temp, { force: true });
    }
  }

  tempName(): string {
    return path.join(this.dir, `${INCOMING_PREFIX}${randomBytes(8).toString("hex")}`);
  }

  /**
   * Removes copies of bytes no version has any more (`keep` read AFTER the directory listing was
   * taken: a copy is renamed into place only after its row is committed) and temp files older
   * than an hour.
   */
  async prune(listed: string[], keep: Set<string>): Promise<void> {
    for (const name of listed) {
      const file = path.join(this.dir, name);
      if (name.startsWith(INCOMING_PREFIX)) {
        const info = await stat(file).catch(() => undefined);
        if (info && Date.now() - info.mtimeMs > STALE_TEMP_MS)
          await rm(file, { recursive: true, force: true });
        continue;
      }
      const sha = COPY_NAME.exec(name)?.[1];
      if (sha && !keep.has(sha)) {
        await rm(file, { force: true });
        this.checked.delete(sha);
      }
    }
  }

  list(): Promise<string[]> {
    return readdir(this.dir);
  }

  private async writeFromDatabase(wanted: CopyWanted): Promise<string> {
    const content = await this.load(wanted);
    if (!content) throw new NbfError("NBF_ARTIFACT_NOT_FOUND", { version: wanted.version });
    const actual = createHash("sha256").update(content).digest("hex");
    if (actual !== wanted.sha256 || content.length !== wanted.bytes) {
      throw new NbfError("NBF_INTERNAL", {
        reason: `agent artifact ${wanted.version}: the database holds ${content.length} bytes of sha256 ${actual}, its record says ${wanted.bytes} bytes of sha256 ${wanted.sha256}`,
      });
    }
    const temp = this.tempName();
    try {
      await writeFile(temp, content, { mode: 0o644, flag: "wx" });
      await this.adopt(temp, wanted.sha256);
    } finally {
      await rm(temp, { force: true });
    }
    return this.pathOf(wanted.sha256);
  }
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}
