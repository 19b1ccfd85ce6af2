/**
 * matplotlib guards its font cache with a lock file that it removes when done. A kernel killed
 * while it held the lock (a notebook restart during a first plot) leaves the file, and from then
 * on every plot of that user fails ("Lock error: Matplotlib failed to acquire the following lock
 * file"), the deep check's too, until someone removes it. A lock older than a minute is stale:
 * the build it guards takes seconds. Removing a file never follows a link, and a cache dir that
 * is a link is left alone (the agent may be root in the notebook user's home).
 */
import { lstat, readdir, rm } from "node:fs/promises";
import path from "node:path";

const STALE_AFTER_MS = 60_000;

/** Removes stale matplotlib locks under `home`'s default cache; returns the files removed. */
export async function clearStaleMatplotlibLocks(home: string, now = Date.now()): Promise<string[]> {
  const dir = path.join(home, ".cache", "matplotlib");
  const found = await lstat(dir).catch(() => null);
  if (!found?.isDirectory()) return [];
  const removed: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith(".matplotlib-lock")) continue;
    const file = path.join(dir, entry.name);
    const lock = await lstat(file).catch(() => null);
    if (!lock?.isFile() || now - lock.mtimeMs < STALE_AFTER_MS) continue;
    await rm(file, { force: true });
    removed.push(file);
  }
  return removed;
}
