/**
 * Where local sandboxes live: `<dataDir>/sandboxes`. A notebook runs as an unprivileged user,
 * which must be able to reach its sandbox; when the controller is root and its data dir sits
 * somewhere others cannot enter (root's home is 0700), the sandboxes go under
 * /var/lib/nbfleet/sandboxes/<id> and `<dataDir>/sandboxes` links there. The root is 0711:
 * a machine's user passes through it to its own sandbox but cannot list the others.
 */
import { createHash } from "node:crypto";
import { chmod, lstat, mkdir, readlink, stat, symlink } from "node:fs/promises";
import path from "node:path";

export async function sandboxRoot(dataDir: string, isRoot = process.getuid?.() === 0): Promise<string> {
  const inside = path.join(path.resolve(dataDir), "sandboxes");
  const link = await lstat(inside).catch(() => null);
  if (link?.isSymbolicLink()) return unlisted(path.resolve(path.dirname(inside), await readlink(inside)));
  if (link?.isDirectory() || !isRoot || (await othersCanTraverse(path.resolve(dataDir)))) {
    return unlisted(inside);
  }
  const id = createHash("sha256").update(path.resolve(dataDir)).digest("hex").slice(0, 12);
  const outside = path.join("/var/lib/nbfleet/sandboxes", id);
  await unlisted(outside);
  await symlink(outside, inside);
  return outside;
}

/** Creates `dir` when missing and makes it 0711 (also a root made 0755 by an older version). */
async function unlisted(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o711 });
  await chmod(dir, 0o711);
  return dir;
}

async function othersCanTraverse(dir: string): Promise<boolean> {
  for (let current = dir; ; current = path.dirname(current)) {
    const info = await stat(current).catch(() => null);
    if (info && (info.mode & 0o001) === 0) return false;
    if (path.dirname(current) === current) return true;
  }
}
