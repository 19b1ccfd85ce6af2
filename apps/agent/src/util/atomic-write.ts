/**
 * Writes a file so a crash or a power cut leaves either the old or the new content, never half
 * of one. A file that already holds exactly this content, mode and owner is left alone: the
 * agent rewrites its settings, profile and install record at every start, and on a full disk
 * that must not fail.
 */
import { randomBytes } from "node:crypto";
import { open, readFile, rename, rm, stat } from "node:fs/promises";
import path from "node:path";

export interface FileOwner {
  uid: number;
  gid: number;
}

export async function writeFileAtomic(
  file: string,
  content: string | Uint8Array,
  options: { mode?: number; owner?: FileOwner | null } = {},
): Promise<void> {
  const mode = options.mode ?? 0o644;
  if (await holds(file, content, mode, options.owner ?? null)) return;
  const temp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    const handle = await open(temp, "wx", mode);
    try {
      await handle.writeFile(content);
      if (options.owner) await handle.chown(options.owner.uid, options.owner.gid);
      // On disk before the rename makes it the file, and the rename on disk before we go on: a
      // power cut must not bring back a rotated password's old hash, or leave an empty file.
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
    await syncDirectory(path.dirname(file));
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Whether the file is already exactly what a write would leave. */
async function holds(
  file: string,
  content: string | Uint8Array,
  mode: number,
  owner: FileOwner | null,
): Promise<boolean> {
  try {
    const info = await stat(file);
    const uid = owner?.uid ?? process.getuid?.();
    const gid = owner?.gid ?? process.getgid?.();
    if (!info.isFile() || (info.mode & 0o7777) !== mode || info.uid !== uid || info.gid !== gid) return false;
    const wanted = typeof content === "string" ? Buffer.from(content) : content;
    if (info.size !== wanted.byteLength) return false;
    return Buffer.from(await readFile(file)).equals(wanted);
  } catch {
    return false;
  }
}
