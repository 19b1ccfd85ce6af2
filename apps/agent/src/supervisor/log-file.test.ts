import { mkdtemp, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { capLogFile, tailLines } from "./log-file.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-log-cap-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("capLogFile", () => {
  it("keeps the previous part in <file>.1", async () => {
    const file = path.join(dir, "notebook.log");
    await writeFile(file, "a".repeat(100));
    expect(await capLogFile(file, 50)).toBe(true);
    expect((await stat(file)).size).toBe(0);
    expect(await readFile(`${file}.1`, "utf8")).toBe("a".repeat(100));
    expect(await capLogFile(file, 50)).toBe(false);
  });

  it("holds the cap when the previous part cannot be kept (its copy fails), and says so", async () => {
    const file = path.join(dir, "notebook.log");
    await writeFile(file, "b".repeat(100));
    await symlink("/dev/full", `${file}.1`);
    const capping = capLogFile(file, 50);
    await expect(capping).rejects.toThrow(/capped .*notebook\.log but could not keep its previous part/);
    // The copy's own errno travels with it (copy_file_range to /dev/full: EINVAL).
    await expect(capping).rejects.toMatchObject({ code: expect.stringMatching(/^E[A-Z]+$/) });
    expect((await stat(file)).size).toBe(0);
  });
});

describe("tailLines", () => {
  it("reads the last lines of the live file, reaching into <file>.1 when it is short", async () => {
    const file = path.join(dir, "notebook.log");
    await writeFile(`${file}.1`, "old 1\nold 2\n");
    await writeFile(file, "new 1\nnew 2\n");
    expect(await tailLines(file, 1)).toEqual(["new 2"]);
    expect(await tailLines(file, 3)).toEqual(["old 2", "new 1", "new 2"]);
    expect(await tailLines(path.join(dir, "missing.log"), 5)).toEqual([]);
  });
});
