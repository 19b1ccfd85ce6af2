/**
 * The password handed over at start-up (`up --password-hash-file`, repeated by a launcher on
 * every start) applies to a data directory without one, and never over one a command set.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Agent } from "../agent.js";
import { readHashFile } from "./hash-file.js";

const CREATION = "sha1:0123456789ab:0123456789abcdef0123456789abcdef01234567";
const CHANGED = "sha1:ba9876543210:fedcba9876543210fedcba9876543210fedcba98";
const dirs: string[] = [];

async function dataDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "nbf-initial-password-"));
  dirs.push(dir);
  return dir;
}

async function open(dir: string, passwordHash?: string) {
  const agent = await Agent.open({ dataDir: dir, isRoot: false, ...(passwordHash ? { passwordHash } : {}) });
  agent.close();
  return agent;
}

const stored = (dir: string) => readFile(path.join(dir, "state", "password-hash"), "utf8");

afterEach(async () => {
  await Promise.all(dirs.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

describe("the initial password hash", () => {
  it("is stored (0600) when the data directory has no password yet", async () => {
    const dir = await dataDir();
    await open(dir, CREATION);
    expect(await stored(dir)).toBe(`${CREATION}\n`);
    expect((await stat(path.join(dir, "state", "password-hash"))).mode & 0o777).toBe(0o600);
  });

  it("never replaces a password set since: a launcher's next start leaves it, and says so", async () => {
    const dir = await dataDir();
    await open(dir, CREATION);
    // What a password command leaves behind.
    await writeFile(path.join(dir, "state", "password-hash"), `${CHANGED}\n`, { mode: 0o600 });
    const again = await open(dir, CREATION);
    expect(await stored(dir)).toBe(`${CHANGED}\n`);
    const events = await again.events.read();
    expect(events.map((e) => e.kind)).toContain("password.initial-ignored");
    expect(JSON.stringify(events)).not.toContain(CREATION);
  });

  it("is refused when malformed, before anything is stored", async () => {
    const dir = await dataDir();
    await expect(open(dir, "plaintext-password")).rejects.toThrow(/not a Jupyter password hash/);
    await expect(stored(dir)).rejects.toThrow(/ENOENT/);
  });
});

describe("readHashFile", () => {
  it("reads one hash from its file, and names the file when it cannot", async () => {
    const dir = await dataDir();
    const file = path.join(dir, "password-hash");
    await writeFile(file, `${CREATION}\n`, { mode: 0o600 });
    expect(await readHashFile(file)).toBe(CREATION);
    await expect(readHashFile(path.join(dir, "missing"))).rejects.toThrow(
      /cannot read the password hash file .*missing/,
    );
    await writeFile(file, "not a hash\n");
    await expect(readHashFile(file)).rejects.toThrow(/not a Jupyter password hash/);
    await writeFile(file, "x".repeat(5000));
    await expect(readHashFile(file)).rejects.toThrow(/larger than 4096 bytes/);
  });
});
