/**
 * Packs a staging directory as a reproducible `.tar.gz`: sorted entries, a fixed mtime and no
 * owner or host metadata, so the same inputs give the same bytes (and the same checksum).
 * Guests unpack it with the system `tar -xzf`.
 */
import { readdir } from "node:fs/promises";
import path from "node:path";
import { create } from "tar";

const FIXED_MTIME = new Date("2000-01-01T00:00:00Z");

export async function packDirectory(dir: string, file: string): Promise<void> {
  const entries = await listFiles(dir);
  await create({ file, cwd: dir, gzip: { level: 9 }, portable: true, mtime: FIXED_MTIME }, entries);
}

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(path.join(dir, prefix), { withFileTypes: true })) {
    const relative = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await listFiles(dir, relative)));
    else if (entry.isFile()) out.push(relative);
  }
  return out.sort();
}
