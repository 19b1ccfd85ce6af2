/**
 * The agent artifact `nbfleet server` and `nbfleet up` serve to guests. From a checkout it is
 * built from the agent's sources into the data dir (cached: rebuilt only when a source changed).
 * A release bundle replaces this module with packaging/src/runtime/shipped-agent-artifact.ts,
 * which serves the artifact built with the release: a release builds nothing at run time.
 */
import path from "node:path";
import { buildAgentArtifact } from "@nbfleet/scripts";
import type { ArtifactInfo } from "../artifact-info.js";

export function agentArtifact(dataDir: string): Promise<ArtifactInfo> {
  return buildAgentArtifact({ outDir: path.join(dataDir, "artifact") });
}
