import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadOrCreateAccountKey } from "./account-key.js";

const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

async function tempFile() {
  const dir = await mkdtemp(path.join(tmpdir(), "nbf-acme-key-"));
  dirs.push(dir);
  return path.join(dir, "state", "acme-account-key.pem");
}

describe("loadOrCreateAccountKey", () => {
  it("makes one 0600 key, keeps it, and puts a drifted mode back", async () => {
    const file = await tempFile();
    const [first, second] = await Promise.all([loadOrCreateAccountKey(file), loadOrCreateAccountKey(file)]);
    expect(first).toMatch(/BEGIN PRIVATE KEY/);
    expect(second).toBe(first);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    await chmod(file, 0o644);
    expect(await loadOrCreateAccountKey(file)).toBe(first);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it("refuses an unreadable key naming the file, and leaves it as it was", async () => {
    const file = await tempFile();
    await loadOrCreateAccountKey(file);
    await writeFile(file, "garbage");
    await expect(loadOrCreateAccountKey(file)).rejects.toMatchObject({
      code: "NBF_ACME_FAILED",
      message: expect.stringContaining(`the ACME account key ${file} cannot be read as a PEM private key`),
    });
    expect(await readFile(file, "utf8")).toBe("garbage");
  });
});
