import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ServedBytes } from "./served-bytes.js";

let dir = "";
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-served-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, size: number): Promise<string> {
  const at = path.join(dir, name);
  await writeFile(at, Buffer.alloc(size, name));
  return at;
}

describe("ServedBytes", () => {
  it("reads a file once and serves it from memory after", async () => {
    const served = new ServedBytes(1000);
    const a = await file("a", 100);
    const first = await served.get("a", 100, a);
    await rm(a);
    expect(await served.get("a", 100, a)).toBe(first);
  });

  it("stays within its bound: the least recently served goes first, a too large one is not kept", async () => {
    const served = new ServedBytes(250);
    const [a, b, c] = await Promise.all([file("a", 100), file("b", 100), file("c", 100)]);
    await served.get("a", 100, a);
    await served.get("b", 100, b);
    await served.get("a", 100, a); // a is now the most recent
    await served.get("c", 100, c); // b goes
    await rm(a);
    await rm(b);
    expect(await served.get("a", 100, a)).not.toBeNull();
    await expect(served.get("b", 100, b)).rejects.toThrow(/ENOENT/);
    expect(await served.get("big", 300, await file("big", 300))).toBeNull();
  });

  it("does not keep a file whose size is not the record's", async () => {
    const served = new ServedBytes(1000);
    expect(await served.get("a", 99, await file("a", 100))).toBeNull();
  });
});
