import { mkdtemp, rm, utimes, writeFile } from "node:fs/promises";
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
  it("reads a file once and serves it from memory while the file is unchanged", async () => {
    const served = new ServedBytes(1000);
    const a = await file("a", 100);
    const first = await served.get("a", 100, a);
    expect(await served.get("a", 100, a)).toBe(first);
  });

  it("serves what the file holds: a file changed since it was read is read again", async () => {
    const served = new ServedBytes(1000);
    const a = await file("a", 100);
    const first = await served.get("a", 100, a);
    const changed = Buffer.alloc(100, "z");
    await writeFile(a, changed);
    await utimes(a, new Date(), new Date(Date.now() + 5000));
    const second = await served.get("a", 100, a);
    expect(second).not.toBe(first);
    expect(second?.equals(changed)).toBe(true);
  });

  it("stays within its bound: the least recently served goes first, a too large one is not kept", async () => {
    const served = new ServedBytes(250);
    const [a, b, c] = await Promise.all([file("a", 100), file("b", 100), file("c", 100)]);
    const aFirst = await served.get("a", 100, a);
    const bFirst = await served.get("b", 100, b);
    await served.get("a", 100, a); // a is now the most recent
    await served.get("c", 100, c); // b goes, a stays
    expect(await served.get("a", 100, a)).toBe(aFirst);
    expect(await served.get("b", 100, b)).not.toBe(bFirst);
    expect(await served.get("big", 300, await file("big", 300))).toBeNull();
  });

  it("does not keep a file whose size is not the record's", async () => {
    const served = new ServedBytes(1000);
    expect(await served.get("a", 99, await file("a", 100))).toBeNull();
  });
});
