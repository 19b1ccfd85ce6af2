import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { tsxArgs } from "@nbfleet/testkit/processes";
import { repoRoot } from "@nbfleet/testkit/repo";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inspectArtifact } from "../artifact/inspect.js";

const run = promisify(execFile);
const script = path.join(repoRoot, "packages/scripts/src/cli/build-agent.ts");
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-build-agent-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function buildAgent(...args: string[]) {
  return run(process.execPath, tsxArgs(script, args), { cwd: repoRoot }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({
      code: error.code,
      stdout: error.stdout,
      stderr: error.stderr,
    }),
  );
}

describe("pnpm build:agent", () => {
  it("builds an artifact of the given version: its manifest, its bundle's --version, a checkable tarball", async () => {
    const out = path.join(dir, "agent-3.4.5-rc.1.tar.gz");
    const result = await buildAgent("--version", "3.4.5-rc.1", "--out", out);
    expect(result.code, result.stderr).toBe(0);
    const printed = JSON.parse(result.stdout);
    const bytes = await readFile(out);
    expect(printed).toEqual({
      file: out,
      version: "3.4.5-rc.1",
      sha256: createHash("sha256").update(bytes).digest("hex"),
      bytes: bytes.length,
    });
    expect((await inspectArtifact(out)).version).toBe("3.4.5-rc.1");
    const unpacked = await mkdtemp(path.join(dir, "unpacked-"));
    await run("tar", ["-xzf", out, "-C", unpacked]);
    const { stdout } = await run(process.execPath, [path.join(unpacked, "nbfleet-agent.mjs"), "--version"]);
    expect(stdout.trim()).toBe("3.4.5-rc.1");
    // Nothing left beside the output but the output.
    expect((await readdir(dir)).filter((name) => !name.startsWith("unpacked-"))).toEqual([
      "agent-3.4.5-rc.1.tar.gz",
    ]);
  }, 120_000);

  it("refuses a missing or malformed version with exit code 2, writing nothing", async () => {
    const out = path.join(dir, "never.tar.gz");
    const missing = await buildAgent("--out", out);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("usage: pnpm build:agent --version");
    const bad = await buildAgent("--version", "1.2", "--out", out);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--version "1.2" is not a version');
    expect(await readdir(dir)).not.toContain("never.tar.gz");
  }, 60_000);
});
