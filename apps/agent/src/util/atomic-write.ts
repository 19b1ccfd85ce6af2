/** Writes a file so a crash leaves either the old or the new content, never half of one. */
import { randomBytes } from "node:crypto";
import { chown, rename, rm, writeFile } from "node:fs/promises";

export interface FileOwner {
  uid: number;
  gid: number;
}

export async function writeFileAtomic(
  file: string,
  content: string | Uint8Array,
  options: { mode?: number; owner?: FileOwner | null } = {},
): Promise<void> {
  const temp = `${file}.${randomBytes(6).toString("hex")}.tmp`;
  try {
    await writeFile(temp, content, { mode: options.mode ?? 0o644, flag: "wx" });
    if (options.owner) await chown(temp, options.owner.uid, options.owner.gid);
    await rename(temp, file);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}
