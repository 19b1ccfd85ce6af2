import { mkdir, mkdtemp, rm, stat, symlink, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { clearStaleMatplotlibLocks } from "./stale-locks.js";

let home: string;
beforeEach(async () => {
  home = await mkdtemp(path.join(os.tmpdir(), "nbf-mpl-locks-"));
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

describe("clearStaleMatplotlibLocks", () => {
  it("removes a lock left by a killed kernel, keeps a fresh one and every other file", async () => {
    const cache = path.join(home, ".cache", "matplotlib");
    await mkdir(cache, { recursive: true });
    const stale = path.join(cache, "fontlist-v330.json.matplotlib-lock");
    const fresh = path.join(cache, "tex.cache.matplotlib-lock");
    const fontlist = path.join(cache, "fontlist-v330.json");
    for (const file of [stale, fresh, fontlist]) await writeFile(file, "");
    const twoMinutesAgo = new Date(Date.now() - 120_000);
    await utimes(stale, twoMinutesAgo, twoMinutesAgo);
    await utimes(fontlist, twoMinutesAgo, twoMinutesAgo);

    expect(await clearStaleMatplotlibLocks(home)).toEqual([stale]);
    expect(await exists(stale)).toBe(false);
    expect(await exists(fresh)).toBe(true);
    expect(await exists(fontlist)).toBe(true);
  });

  it("leaves a cache dir that is a link alone, and does nothing without a cache", async () => {
    expect(await clearStaleMatplotlibLocks(home)).toEqual([]);
    const elsewhere = await mkdtemp(path.join(os.tmpdir(), "nbf-mpl-elsewhere-"));
    try {
      const lock = path.join(elsewhere, "x.matplotlib-lock");
      await writeFile(lock, "");
      const old = new Date(Date.now() - 120_000);
      await utimes(lock, old, old);
      await mkdir(path.join(home, ".cache"));
      await symlink(elsewhere, path.join(home, ".cache", "matplotlib"));
      expect(await clearStaleMatplotlibLocks(home)).toEqual([]);
      expect(await exists(lock)).toBe(true);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });
});
