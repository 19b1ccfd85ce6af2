export {
  AGENT_BUNDLE_FILE,
  ARTIFACT_FILE,
  type AgentArtifact,
  type ArtifactManifest,
  type BuildAgentArtifactOptions,
  buildAgentArtifact,
} from "./build.js";
export { NATIVE_PACKAGES } from "./native.js";
export {
  ARTIFACT_MAX_BYTES,
  ARTIFACT_MAX_UNPACKED_BYTES,
  type InspectedArtifact,
  inspectArtifact,
} from "./inspect.js";
