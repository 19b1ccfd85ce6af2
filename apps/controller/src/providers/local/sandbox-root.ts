/**
 * Where local sandboxes live: `<dataDir>/sandboxes`. A notebook runs as an unprivileged user,
 * which must be able to reach its sandbox; when the controller is root and its data dir sits
 * somewhere others cannot enter (root's home is 0700), the sandboxes go under
 * /var/lib/nbfleet/sandboxes/<id> and `<dataDir>/sandboxes` links there.
 */
import { createHash } from "node:crypto";
import { lstat, mkdir, readlink, stat, symlink } from "node:fs/promises";
import path from "node:path";

export async function sandboxRoot(dataDir: string, isRoot = process.getuid?.() === 0): Promise<string> {
  const inside = path.join(path.resolve(dataDir), "sandboxes");
  const link = await lstat(inside).catch(() => null);
  if (link?.isSymbolicLink()) return path.resolve(path.dirname(inside), await readlink(inside));
  if (link?.isDirectory() || !isRoot || (await othersCanTraverse(path.resolve(dataDir)))) {
    await mkdir(inside, { recursive: true, mode: 0o755 });
    return inside;
  }
  const id = createHash("sha256").update(path.resolve(dataDir)).digest("hex").slice(0, 12);
  const outside = path.join("/var/lib/nbfleet/sandboxes", id);
  await mkdir(outside, { recursive: true, mode: 0o755 });
  await symlink(outside, inside);
  return outside;
}

async function othersCanTraverse(dir: string): Promise<boolean> {
  for (let current = dir; ; current = path.dirname(current)) {
    const info = await stat(current).catch(() => null);
    if (info && (info.mode & 0o001) === 0) return false;
    if (path.dirname(current) === current) return true;
  }
}
