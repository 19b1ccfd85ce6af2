import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { verifyArtifact } from "@nbfleet/shared/artifact-signature";
import { fakeArtifact, tarEntry, tarGz } from "@nbfleet/testkit/artifact-tarball";
import { runCli } from "@nbfleet/testkit/cli";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

let controller: TestController;
let work: string;

beforeAll(async () => {
  controller = await startTestController();
  work = await mkdtemp(path.join(tmpdir(), "nbf-cli-agent-"));
}, 60_000);
afterAll(async () => {
  await controller?.close();
  await rm(work, { recursive: true, force: true });
});

const nbfleet = (...args: string[]) => runCli(controller, ...args);
async function file(name: string, bytes: Buffer): Promise<string> {
  const at = path.join(work, name);
  await writeFile(at, bytes);
  return at;
}

describe("nbfleet agent", () => {
  it("says how to publish when nothing is stored", async () => {
    const run = await nbfleet("agent", "artifacts");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("no agent artifacts stored; publish one with: nbfleet agent publish FILE");
  }, 180_000);

  it("publishes a file, then lists it (table and JSON), the newest marked", async () => {
    const bytes = fakeArtifact("2.3.4");
    const run = await nbfleet("agent", "publish", await file("a.tar.gz", bytes));
    expect(run.code, run.stderr).toBe(0);
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    expect(run.stdout).toContain("agent 2.3.4 published");
    expect(run.stdout).toContain(`sha256     ${sha256}`);
    expect(run.stdout).toContain("nbfleet op run agent.upgrade --version 2.3.4");

    await nbfleet("agent", "publish", await file("b.tar.gz", fakeArtifact("2.3.5-rc.1")));
    const table = await nbfleet("agent", "artifacts");
    expect(table.stdout).toMatch(/2\.3\.5-rc\.1 \(newest\)\s+│\s+\d+ B\s+│\s+[0-9a-f]{64}\s+│\s+0/);
    expect(table.stdout).toMatch(new RegExp(`2\\.3\\.4\\s+│\\s+${bytes.length} B\\s+│\\s+${sha256}`));

    const json = JSON.parse((await nbfleet("--json", "agent", "artifacts")).stdout);
    expect(json.items.map((i: { version: string }) => i.version)).toEqual(["2.3.5-rc.1", "2.3.4"]);
    expect(verifyArtifact(json.releasePublicKey, "2.3.4", sha256, json.items[1].signature)).toBe(true);

    const again = JSON.parse(
      (await nbfleet("--json", "agent", "publish", path.join(work, "a.tar.gz"))).stdout,
    );
    expect(again).toMatchObject({ version: "2.3.4", created: false, sha256 });
  }, 180_000);

  it("exits 2 with the server's reason for a refused file, and for a file it cannot read", async () => {
    const evil = await file("evil.tar.gz", tarGz(tarEntry("../../x"), tarEntry("manifest.json")));
    const refused = await nbfleet("agent", "publish", evil);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/"\.\.\/\.\.\/x" climbs out of the artifact .*\[NBF_ARTIFACT_INVALID\]/);
    const clash = await nbfleet("agent", "publish", await file("c.tar.gz", fakeArtifact("2.3.4", "other\n")));
    expect(clash.code).toBe(2);
    expect(clash.stderr).toContain("NBF_ARTIFACT_VERSION_EXISTS");
    const missing = await nbfleet("agent", "publish", path.join(work, "nope.tar.gz"));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read .*nope\.tar\.gz: ENOENT/);
    const stored = await controller.app.nbfleet.store.db
      .selectFrom("agent_artifacts")
      .select("version")
      .orderBy("version")
      .execute();
    expect(stored.map((row) => row.version)).toEqual(["2.3.4", "2.3.5-rc.1"]);
  }, 180_000);
});
