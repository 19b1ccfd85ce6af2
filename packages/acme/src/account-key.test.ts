import { createPrivateKey } from "node:crypto";
import fs, { chmod, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type AccountKeyFs, loadOrCreateAccountKey } from "./account-key.js";

const dirs: string[] = [];
afterAll(async () => Promise.all(dirs.map((dir) => rm(dir, { recursive: true, force: true }))));

async function tempFile() {
  const dir = await mkdtemp(path.join(tmpdir(), "nbf-acme-key-"));
  dirs.push(dir);
  return path.join(dir, "state", "acme-account-key.pem");
}

const enospc = () => Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });

/**
 * A disk that fills up while a file is being written, whichever call writes it: half of the
 * content lands, then ENOSPC.
 */
function fullDisk(): AccountKeyFs {
  const half = (data: string | Uint8Array) => Buffer.from(data).subarray(0, Math.floor(data.length / 2));
  return {
    ...fs,
    writeFile: async (file: string, data: string) => {
      await fs.writeFile(file, half(data), { mode: 0o600, flag: "wx" });
      throw enospc();
    },
    open: (async (file: string, flags: string, mode: number) => {
      const handle = await fs.open(file, flags, mode);
      return Object.assign(Object.create(handle), {
        writeFile: async (data: string) => {
          await handle.writeFile(half(data));
          throw enospc();
        },
        close: () => handle.close(),
      });
    }) as AccountKeyFs["open"],
  } as AccountKeyFs;
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

  it("leaves no key behind when the disk fills while it is written, and makes a usable one next time", async () => {
    const file = await tempFile();
    await expect(loadOrCreateAccountKey(file, fullDisk())).rejects.toMatchObject({ code: "ENOSPC" });
    expect(await readdir(path.dirname(file))).toEqual([]);
    const key = await loadOrCreateAccountKey(file);
    expect(() => createPrivateKey(key)).not.toThrow();
    expect(await readFile(file, "utf8")).toBe(key);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(await readdir(path.dirname(file))).toEqual([path.basename(file)]);
  });
});
