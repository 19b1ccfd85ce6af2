import { createHash, randomBytes } from "node:crypto";
import { appendFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SHIPPED_ARTIFACT_RECORD, shippedArtifact } from "./shipped-agent-artifact.js";

let dir: string;
const bytes = randomBytes(4096);
const sha256 = createHash("sha256").update(bytes).digest("hex");

async function writeRecord(record: unknown): Promise<void> {
  await writeFile(path.join(dir, SHIPPED_ARTIFACT_RECORD), JSON.stringify(record));
}

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-shipped-"));
  await writeFile(path.join(dir, "nbfleet-agent.tar.gz"), bytes);
  await writeRecord({ file: "nbfleet-agent.tar.gz", sha256, bytes: bytes.length, version: "9.9.9" });
});

afterEach(() => rm(dir, { recursive: true, force: true }));

describe("shippedArtifact", () => {
  it("describes the shipped file with the checksum it recomputed", async () => {
    expect(await shippedArtifact(dir)).toEqual({
      file: path.join(dir, "nbfleet-agent.tar.gz"),
      sha256,
      bytes: bytes.length,
      version: "9.9.9",
    });
  });

  it("refuses an artifact whose bytes are not the recorded ones", async () => {
    await appendFile(path.join(dir, "nbfleet-agent.tar.gz"), "x");
    await expect(shippedArtifact(dir)).rejects.toMatchObject({
      code: "NBF_RELEASE_ARTIFACT_INVALID",
      message: expect.stringMatching(/nbfleet-agent\.tar\.gz is not the one this release was built with/),
    });
  });

  it("refuses a missing artifact, naming it", async () => {
    await rm(path.join(dir, "nbfleet-agent.tar.gz"));
    await expect(shippedArtifact(dir)).rejects.toThrow(/nbfleet-agent\.tar\.gz cannot be read/);
  });

  it("refuses a record that is missing, not JSON, or not an artifact's", async () => {
    await writeFile(path.join(dir, SHIPPED_ARTIFACT_RECORD), "{");
    await expect(shippedArtifact(dir)).rejects.toThrow(/artifact\.json cannot be read/);
    await writeRecord({ file: "nbfleet-agent.tar.gz", sha256: "abc", bytes: bytes.length, version: "1" });
    await expect(shippedArtifact(dir)).rejects.toThrow(/does not describe an agent artifact/);
    await rm(path.join(dir, SHIPPED_ARTIFACT_RECORD));
    await expect(shippedArtifact(dir)).rejects.toThrow(/artifact\.json cannot be read.*reinstall nbfleet/);
  });

  it("reads the artifact from its own directory only, whatever path the record names", async () => {
    await writeRecord({ file: "../../etc/passwd", sha256, bytes: bytes.length, version: "9.9.9" });
    await expect(shippedArtifact(dir)).rejects.toThrow(
      new RegExp(`${path.join(dir, "passwd")} cannot be read`),
    );
  });
});
