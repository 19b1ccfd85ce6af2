/**
 * Agent versions for upgrade tests and the benchmark: a real build of the checkout under another
 * version (cached across runs: a build takes seconds), a hand-made artifact whose agent does
 * something else (exits at start, never connects), and publishing either to a controller.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { buildAgentArtifact } from "@nbfleet/scripts";
import { AGENT_ARTIFACTS_PATH } from "@nbfleet/shared";
import { makeDataDir } from "./data-dir.js";

const run = promisify(execFile);

/** Where built versions are kept between runs (the build's own record says when one is stale). */
const CACHE_DIR = path.join(os.tmpdir(), "nbfleet-agent-versions");

export interface BuiltVersion {
  version: string;
  file: string;
  sha256: string;
  bytes: number;
}

/** The checkout's agent built as `version` (what `pnpm build:agent --version V` makes). */
export async function buildAgentVersion(version: string): Promise<BuiltVersion> {
  const built = await buildAgentArtifact({ outDir: path.join(CACHE_DIR, version), version });
  if (built.version !== version)
    throw new Error(`asked to build ${version}, the build says ${built.version}`);
  return { version, file: built.file, sha256: built.sha256, bytes: built.bytes };
}

/**
 * An artifact that passes the controller's checks (a gzip tar with a `manifest.json` naming the
 * version and an `nbfleet-agent.mjs`) whose agent is `script`: e.g. `process.exit(1)`.
 */
export async function handMadeArtifact(version: string, script: string): Promise<string> {
  const dir = makeDataDir("nbf-handmade-agent-", 0o700);
  const content = path.join(dir, "content");
  await mkdir(content);
  const manifest = {
    name: "nbfleet-agent",
    version,
    entry: "nbfleet-agent.mjs",
    node: ">=20",
    platform: `${process.platform}-${process.arch}`,
    native: [],
  };
  await writeFile(path.join(content, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  await writeFile(path.join(content, "nbfleet-agent.mjs"), `${script}\n`);
  const file = path.join(dir, "nbfleet-agent.tar.gz");
  await run("tar", ["-czf", file, "-C", content, "manifest.json", "nbfleet-agent.mjs"]);
  await rm(content, { recursive: true });
  return file;
}

export interface PublishedArtifact {
  version: string;
  sha256: string;
  bytes: number;
  signature: string;
  publishedAt: string;
}

/** `POST /v1/agent/artifacts` with the file as the body; throws with the answer unless 201. */
export async function publishArtifact(
  controller: { url: string; token: string },
  file: string,
): Promise<PublishedArtifact> {
  const response = await fetch(`${controller.url}${AGENT_ARTIFACTS_PATH}`, {
    method: "POST",
    headers: { authorization: `Bearer ${controller.token}`, "content-type": "application/gzip" },
    body: await readFile(file),
  });
  const text = await response.text();
  if (response.status !== 201) throw new Error(`publishing ${file}: ${response.status} ${text}`);
  return JSON.parse(text) as PublishedArtifact;
}
