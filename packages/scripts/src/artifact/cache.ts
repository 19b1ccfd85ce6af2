/**
 * The build record next to the artifact: which files went into it and their hashes, so the
 * controller, which asks for the artifact at every start, rebuilds only when one changed.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { readFile, rename, writeFile } from "node:fs/promises";

export interface BuildRecord {
  /** Everything besides file contents that shapes the artifact (recipe, esbuild, platform). */
  key: string;
  version: string;
  sha256: string;
  bytes: number;
  /** Absolute path → sha256 of every bundled source and packed native file. */
  inputs: Record<string, string>;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

export async function hashInputs(files: Iterable<string>): Promise<Record<string, string>> {
  const sorted = [...new Set(files)].sort();
  const hashes = await Promise.all(sorted.map((file) => sha256File(file)));
  return Object.fromEntries(sorted.map((file, i) => [file, hashes[i]!]));
}

export async function readBuildRecord(file: string): Promise<BuildRecord | undefined> {
  try {
    const record = JSON.parse(await readFile(file, "utf8")) as BuildRecord;
    return typeof record.sha256 === "string" && record.inputs ? record : undefined;
  } catch {
    return undefined;
  }
}

export async function writeBuildRecord(file: string, record: BuildRecord): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(record, null, 2)}\n`);
  await rename(temp, file);
}

/** True when the artifact on disk is the one recorded and no recorded input changed. */
export async function isFresh(record: BuildRecord, key: string, artifactFile: string): Promise<boolean> {
  if (record.key !== key) return false;
  const artifactHash = await sha256File(artifactFile).catch(() => undefined);
  if (artifactHash !== record.sha256) return false;
  const current = await hashInputs(Object.keys(record.inputs)).catch(() => undefined);
  if (!current) return false;
  return Object.entries(record.inputs).every(([file, hash]) => current[file] === hash);
}
