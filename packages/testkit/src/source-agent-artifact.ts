/**
 * An agent artifact whose `nbfleet-agent.mjs` runs this checkout's agent from source (under
 * tsx, by absolute paths): a bootstrap installs and starts it like a built one, without the
 * build's seconds, and the agent's own children (`certificate acme`, the certificate maker)
 * start the same way, through `process.argv[1]`.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { handMadeArtifact } from "./agent-versions.js";
import { agentMain, tsxLoader } from "./repo.js";

export interface SourceAgentArtifact {
  file: string;
  bytes: Buffer;
  sha256: string;
}

export async function sourceAgentArtifact(version = "0.0.0-source"): Promise<SourceAgentArtifact> {
  const shim = [
    `await import(${JSON.stringify(pathToFileURL(tsxLoader).href)});`,
    `await import(${JSON.stringify(pathToFileURL(agentMain).href)});`,
  ].join("\n");
  const file = await handMadeArtifact(version, shim);
  const bytes = await readFile(file);
  return { file, bytes, sha256: createHash("sha256").update(bytes).digest("hex") };
}
