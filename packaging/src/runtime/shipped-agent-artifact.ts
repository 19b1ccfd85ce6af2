/**
 * In a release bundle, this module takes the place of the controller's cli/agent-artifact.ts:
 * the agent artifact was built with the release and lies in `agent/` beside the bundle, with a
 * record of its checksum. It is checked at every start, so a damaged install stops with a clear
 * error instead of serving guests an artifact their bootstrap would reject.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { ArtifactInfo } from "@nbfleet/controller";

export const SHIPPED_ARTIFACT_DIR = "agent";
export const SHIPPED_ARTIFACT_RECORD = "artifact.json";

/** What the release build wrote to `agent/artifact.json`. */
export interface ShippedArtifactRecord {
  file: string;
  sha256: string;
  bytes: number;
  version: string;
}

export function agentArtifact(_dataDir: string): Promise<ArtifactInfo> {
  return shippedArtifact(path.join(path.dirname(fileURLToPath(import.meta.url)), SHIPPED_ARTIFACT_DIR));
}

export async function shippedArtifact(dir: string): Promise<ArtifactInfo> {
  const recordFile = path.join(dir, SHIPPED_ARTIFACT_RECORD);
  const record = await readRecord(recordFile);
  const file = path.join(dir, path.basename(record.file));
  const hash = createHash("sha256");
  let bytes = 0;
  try {
    for await (const chunk of createReadStream(file)) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
    }
  } catch (error) {
    throw damaged(`the agent artifact ${file} cannot be read: ${(error as Error).message}`);
  }
  const sha256 = hash.digest("hex");
  if (sha256 !== record.sha256 || bytes !== record.bytes) {
    throw damaged(
      `the agent artifact ${file} is not the one this release was built with ` +
        `(sha256 ${sha256}, ${bytes} bytes; ${recordFile} says ${record.sha256}, ${record.bytes} bytes)`,
    );
  }
  return { file, sha256, bytes, version: record.version };
}

async function readRecord(file: string): Promise<ShippedArtifactRecord> {
  let parsed: Partial<ShippedArtifactRecord>;
  try {
    parsed = JSON.parse(await readFile(file, "utf8")) as Partial<ShippedArtifactRecord>;
  } catch (error) {
    throw damaged(`${file} cannot be read: ${(error as Error).message}`);
  }
  const valid =
    typeof parsed.file === "string" &&
    typeof parsed.version === "string" &&
    typeof parsed.bytes === "number" &&
    typeof parsed.sha256 === "string" &&
    /^[0-9a-f]{64}$/.test(parsed.sha256);
  if (!valid) throw damaged(`${file} does not describe an agent artifact (file, sha256, bytes, version)`);
  return parsed as ShippedArtifactRecord;
}

function damaged(message: string): Error {
  return Object.assign(new Error(`${message}; reinstall nbfleet`), { code: "NBF_RELEASE_ARTIFACT_INVALID" });
}
