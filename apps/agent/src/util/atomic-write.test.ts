import { chmod, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writeFileAtomic } from "./atomic-write.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-atomic-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("writeFileAtomic", () => {
  it("replaces the file, and leaves one that already holds the same content, mode and owner alone", async () => {
    const file = path.join(dir, "agent.json");
    await writeFileAtomic(file, "one\n", { mode: 0o600 });
    const first = await stat(file);
    // The same again: no new file (a full disk would refuse one).
    await writeFileAtomic(file, "one\n", { mode: 0o600 });
    expect((await stat(file)).ino).toBe(first.ino);
    // Other content, or another mode: written anew.
    await writeFileAtomic(file, "two\n", { mode: 0o600 });
    const second = await stat(file);
    expect(second.ino).not.toBe(first.ino);
    expect(await readFile(file, "utf8")).toBe("two\n");
    await chmod(file, 0o644);
    await writeFileAtomic(file, "two\n", { mode: 0o600 });
    const third = await stat(file);
    expect(third.ino).not.toBe(second.ino);
    expect(third.mode & 0o777).toBe(0o600);
  });
});
