/**
 * The `current` and `previous` links: read, switched atomically (a new link beside the old one,
 * renamed over it, so a crash leaves one or the other, never none), and the pruning of versions
 * neither points at.
 */
import { randomBytes } from "node:crypto";
import { readdir, readlink, rename, rm, symlink, unlink } from "node:fs/promises";
import path from "node:path";
import type { InstallLayout } from "./install-layout.js";

/** The link's target as written (e.g. `versions/1.2.0`), null when there is no link. */
export async function readVersionLink(link: string): Promise<string | null> {
  try {
    return await readlink(link);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
}

export async function pointLink(link: string, target: string): Promise<void> {
  const temp = `${link}.${randomBytes(6).toString("hex")}.tmp`;
  // A junction on Windows: a directory link that needs no privilege (and an absolute target).
  if (process.platform === "win32") await symlink(path.resolve(path.dirname(link), target), temp, "junction");
  else await symlink(target, temp, "dir");
  try {
    await rename(temp, link).catch(async (error: NodeJS.ErrnoException) => {
      // Windows renames nothing over an existing directory link: it goes first (briefly none).
      if (process.platform !== "win32" || (error.code !== "EPERM" && error.code !== "EEXIST")) throw error;
      await unlink(link);
      await rename(temp, link);
    });
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
}

/** Removes every entry of `versions/` that neither `current` nor `previous` points at. */
export async function pruneVersions(layout: InstallLayout): Promise<string[]> {
  const keep = new Set<string>();
  for (const link of [layout.current, layout.previous]) {
    const target = await readVersionLink(link);
    if (target) keep.add(path.resolve(layout.installDir, target));
  }
  const removed: string[] = [];
  for (const entry of await readdir(layout.versionsDir).catch(() => [] as string[])) {
    const dir = path.join(layout.versionsDir, entry);
    if (keep.has(path.resolve(dir))) continue;
    await rm(dir, { recursive: true, force: true });
    removed.push(entry);
  }
  return removed;
}
