import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PinnedKey } from "./pinned-key.js";

const CERT = Array.from({ length: 32 }, () => "AB").join(":");
const OTHER_CERT = Array.from({ length: 32 }, () => "CD").join(":");
const KEY = Array.from({ length: 32 }, () => "0F").join(":");

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-pinned-key-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const noWriteError = (error: unknown) => {
  throw error;
};

describe("PinnedKey", () => {
  it("starts unknown without a record, writes one 0600 when it learns, and reads it back", async () => {
    const file = path.join(dir, "fresh.json");
    const { pinnedKey, problem } = await PinnedKey.load(file, CERT, noWriteError);
    expect(problem).toBeNull();
    expect(pinnedKey.keySha256).toBeNull();
    pinnedKey.learned(KEY);
    expect(pinnedKey.keySha256).toBe(KEY);
    await expect
      .poll(() => readFile(file, "utf8").then(JSON.parse, () => null))
      .toEqual({
        certificateSha256: CERT,
        keySha256: KEY,
      });
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect((await PinnedKey.load(file, CERT, noWriteError)).pinnedKey.keySha256).toBe(KEY);
  });

  it("ignores a record made for another pinned certificate (the agent was pinned again)", async () => {
    const file = path.join(dir, "re-pinned.json");
    await writeFile(file, JSON.stringify({ certificateSha256: OTHER_CERT, keySha256: KEY }));
    const { pinnedKey, problem } = await PinnedKey.load(file, CERT, noWriteError);
    expect(problem).toBeNull();
    expect(pinnedKey.keySha256).toBeNull();
  });

  it.each([
    ["not JSON", "{", /not valid JSON/],
    [
      "a key that is not a SHA-256",
      JSON.stringify({ certificateSha256: CERT, keySha256: "AB:CD" }),
      /does not hold/,
    ],
    ["no key at all", JSON.stringify({ certificateSha256: CERT }), /does not hold/],
    ["JSON null", "null", /does not hold/],
    ["a huge file", `{"certificateSha256":"${"A".repeat(5000)}"}`, /larger than 4096 bytes/],
  ])("names the file and uses no key when it holds %s", async (_what, content, why) => {
    const file = path.join(dir, "bad.json");
    await writeFile(file, content);
    const { pinnedKey, problem } = await PinnedKey.load(file, CERT, noWriteError);
    expect(pinnedKey.keySha256).toBeNull();
    expect(problem).toContain(file);
    expect(problem).toMatch(why);
  });

  it("reports a record it cannot write, and keeps the key for this process", async () => {
    const errors: unknown[] = [];
    const file = path.join(dir, "no-such-dir", "key.json");
    const { pinnedKey } = await PinnedKey.load(file, CERT, (error) => errors.push(error));
    pinnedKey.learned(KEY);
    await expect.poll(() => errors.length).toBe(1);
    expect(String(errors[0])).toContain("ENOENT");
    expect(pinnedKey.keySha256).toBe(KEY);
  });
});
