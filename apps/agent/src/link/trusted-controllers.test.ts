import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { certificateSha256, publicKeySha256 } from "@nbfleet/shared/certificate-pin";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CertificatePair, generateSelfSigned } from "../tls/generate.js";
import { PinnedKey } from "./pinned-key.js";
import { readTrustedSet } from "./trusted-controllers.js";

let dir: string;
let current: CertificatePair;
let next: CertificatePair;
let stranger: CertificatePair;

const cert = (pair: CertificatePair) => new X509Certificate(pair.certPem);
const pinOf = (pair: CertificatePair) => ({
  certificateSha256: certificateSha256(cert(pair)),
  keySha256: publicKeySha256(cert(pair)),
});
const noWriteError = (error: unknown) => {
  throw error;
};

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-trusted-"));
  [current, next, stranger] = await Promise.all([
    generateSelfSigned(),
    generateSelfSigned(),
    generateSelfSigned(),
  ]);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function load(name: string) {
  return PinnedKey.load(
    path.join(dir, `${name}-key.json`),
    pinOf(current).certificateSha256,
    noWriteError,
    path.join(dir, `${name}-trust.json`),
  );
}

describe("controller.trust on the agent (PinnedKey.trust)", () => {
  it("stores the set 0600 beside the pin it replaces, and an agent started again uses it", async () => {
    const { pinnedKey } = await load("stored");
    expect(pinnedKey.trusted).toBeNull();
    pinnedKey.accepted(cert(current));
    await pinnedKey.trust([pinOf(current), pinOf(next)]);
    expect(pinnedKey.trusted).toEqual([pinOf(current), pinOf(next)]);
    const file = path.join(dir, "stored-trust.json");
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, "utf8"))).toMatchObject({
      pinnedTo: pinOf(current).certificateSha256,
      pins: [pinOf(current), pinOf(next)],
    });
    const again = await load("stored");
    expect(again.problem).toBeNull();
    expect(again.pinnedKey.trusted).toEqual([pinOf(current), pinOf(next)]);
  });

  it("refuses a set without the certificate it is connected through, and stores nothing", async () => {
    const { pinnedKey } = await load("lockout");
    pinnedKey.accepted(cert(current));
    await expect(pinnedKey.trust([pinOf(next), pinOf(stranger)])).rejects.toMatchObject({
      code: "NBF_TRUST_REFUSED",
      message: expect.stringMatching(/would lock the agent out/),
    });
    expect(pinnedKey.trusted).toBeNull();
    await expect(stat(path.join(dir, "lockout-trust.json"))).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("refuses any set before a controller certificate was accepted", async () => {
    const { pinnedKey } = await load("unconnected");
    await expect(pinnedKey.trust([pinOf(current)])).rejects.toMatchObject({
      code: "NBF_TRUST_REFUSED",
      message: expect.stringMatching(/has not accepted a controller certificate/),
    });
  });

  it("accepts a set that keeps the connection's key under a renewed certificate", async () => {
    const { pinnedKey } = await load("by-key");
    pinnedKey.accepted(cert(current));
    const sameKey = { certificateSha256: pinOf(next).certificateSha256, keySha256: pinOf(current).keySha256 };
    await pinnedKey.trust([sameKey]);
    expect(pinnedKey.trusted).toEqual([sameKey]);
  });
});

describe("readTrustedSet", () => {
  const pinned = () => pinOf(current).certificateSha256;

  it("ignores a set stored under another pin (the agent was pinned again by hand)", async () => {
    const file = path.join(dir, "other-pin.json");
    await writeFile(
      file,
      JSON.stringify({ pinnedTo: pinOf(stranger).certificateSha256, pins: [pinOf(next)] }),
    );
    expect(await readTrustedSet(file, pinned())).toEqual({ pins: null, problem: null });
  });

  it("is empty without a file", async () => {
    expect(await readTrustedSet(path.join(dir, "absent.json"), pinned())).toEqual({
      pins: null,
      problem: null,
    });
  });

  it.each([
    ["not JSON", "{", /not valid JSON/],
    ["no pin named", JSON.stringify({ pins: [] }), /does not name the pin/],
    ["JSON null", "null", /does not name the pin/],
    ["an empty set", JSON.stringify({ pinnedTo: "x", pins: [] }), /pins/],
    [
      "a pin that is not a SHA-256",
      JSON.stringify({ pinnedTo: "x", pins: [{ certificateSha256: "AB", keySha256: "CD" }] }),
      /certificateSha256/,
    ],
    [
      "five certificates",
      JSON.stringify({
        pinnedTo: "x",
        pins: Array.from({ length: 5 }, () => ({ certificateSha256: "A", keySha256: "B" })),
      }),
      /pins/,
    ],
    ["a huge file", `{"pinnedTo":"${"A".repeat(9000)}"}`, /larger than 8192 bytes/],
  ])("names the file and uses no set when it holds %s", async (_what, content, why) => {
    const file = path.join(dir, "bad-trust.json");
    await writeFile(file, content);
    const read = await readTrustedSet(file, pinned());
    expect(read.pins).toBeNull();
    expect(read.problem).toContain(file);
    expect(read.problem).toMatch(why);
  });
});
