export {
  AGENT_BUNDLE_FILE,
  ARTIFACT_FILE,
  type AgentArtifact,
  type ArtifactManifest,
  type BuildAgentArtifactOptions,
  buildAgentArtifact,
} from "./build.js";
export { NATIVE_PACKAGES } from "./native.js";
