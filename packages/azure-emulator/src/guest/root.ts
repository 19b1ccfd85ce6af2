/**
 * Where guest sandboxes live: `<dataDir>/guests`. A notebook runs as an unprivileged user who
 * must reach its sandbox; when the emulator is root and its data dir sits where others cannot
 * enter (root's home is 0700), guests go under /var/lib/nbfleet/emulator-guests/<id> instead.
 * Only the path is decided here; the first boot creates it (0755).
 */
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import path from "node:path";

export async function guestRoot(dataDir: string, isRoot = process.getuid?.() === 0): Promise<string> {
  const inside = path.join(path.resolve(dataDir), "guests");
  if (!isRoot || (await othersCanTraverse(path.resolve(dataDir)))) return inside;
  const id = createHash("sha256").update(path.resolve(dataDir)).digest("hex").slice(0, 12);
  return path.join("/var/lib/nbfleet/emulator-guests", id);
}

async function othersCanTraverse(dir: string): Promise<boolean> {
  for (let current = dir; ; current = path.dirname(current)) {
    const info = await stat(current).catch(() => null);
    if (info && (info.mode & 0o001) === 0) return false;
    if (path.dirname(current) === current) return true;
  }
}
