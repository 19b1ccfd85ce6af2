import { link, lstat, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { setModeAndOwner } from "./owned-file.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "nbf-owned-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const modeOf = async (file: string) => (await lstat(file)).mode & 0o7777;

describe("setModeAndOwner", () => {
  it("changes a file's or a directory's mode and owner", async () => {
    const file = path.join(dir, "f");
    await writeFile(file, "x", { mode: 0o644 });
    await setModeAndOwner(file, "file", { mode: 0o600, owner: { uid: 4242, gid: 4343 } });
    expect(await lstat(file)).toMatchObject({ uid: 4242, gid: 4343 });
    expect(await modeOf(file)).toBe(0o600);
    const sub = path.join(dir, "d");
    await mkdir(sub, { mode: 0o755 });
    await setModeAndOwner(sub, "directory", { owner: { uid: 4242, gid: 4242 } });
    expect(await modeOf(sub)).toBe(0o755);
    expect((await lstat(sub)).uid).toBe(4242);
  });

  it("refuses a link, a second name or the wrong kind, and leaves what it points at alone", async () => {
    const target = path.join(dir, "target");
    await writeFile(target, "root's", { mode: 0o640 });
    const soft = path.join(dir, "soft");
    await symlink(target, soft);
    const hard = path.join(dir, "hard");
    await link(target, hard);
    const owner = { uid: 4242, gid: 4242 };
    await expect(setModeAndOwner(soft, "file", { mode: 0o600, owner })).rejects.toMatchObject({
      code: "NBF_UNSAFE_PATH",
      message: expect.stringContaining("symbolic link"),
    });
    await expect(setModeAndOwner(hard, "file", { mode: 0o600, owner })).rejects.toMatchObject({
      code: "NBF_UNSAFE_PATH",
      message: expect.stringContaining("2 names"),
    });
    const softDir = path.join(dir, "soft-dir");
    await symlink(dir, softDir);
    await expect(setModeAndOwner(softDir, "directory", { owner })).rejects.toMatchObject({
      code: "NBF_UNSAFE_PATH",
    });
    await expect(setModeAndOwner(target, "directory", { owner })).rejects.toMatchObject({
      code: "NBF_UNSAFE_PATH",
    });
    expect(await lstat(target)).toMatchObject({ uid: process.getuid!() });
    expect(await modeOf(target)).toBe(0o640);
  });
});
