/**
 * Where guest sandboxes live: `<dataDir>/guests`. A notebook runs as an unprivileged user who
 * must reach its sandbox; when the emulator is root and its data dir sits where others cannot
 * enter (root's home is 0700), guests go under /var/lib/nbfleet/emulator-guests/<id> instead.
 */
import { createHash } from "node:crypto";
import { mkdir, stat } from "node:fs/promises";
import path from "node:path";

export async function guestRoot(dataDir: string, isRoot = process.getuid?.() === 0): Promise<string> {
  const inside = path.join(path.resolve(dataDir), "guests");
  if (!isRoot || (await othersCanTraverse(path.resolve(dataDir)))) {
    await mkdir(inside, { recursive: true, mode: 0o755 });
    return inside;
  }
  const id = createHash("sha256").update(path.resolve(dataDir)).digest("hex").slice(0, 12);
  const outside = path.join("/var/lib/nbfleet/emulator-guests", id);
  await mkdir(outside, { recursive: true, mode: 0o755 });
  return outside;
}

async function othersCanTraverse(dir: string): Promise<boolean> {
  for (let current = dir; ; current = path.dirname(current)) {
    const info = await stat(current).catch(() => null);
    if (info && (info.mode & 0o001) === 0) return false;
    if (path.dirname(current) === current) return true;
  }
}
