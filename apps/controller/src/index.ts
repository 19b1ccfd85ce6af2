/** What other packages (the benchmarks, outside tests) use of the controller. */
export { ENV_VARS, loadSettings, type ControllerSettings } from "./config/settings.js";
export { type BuildOptions, type NbfleetApp, buildServer, listen } from "./server.js";
export type { Provider, ProviderVm, ProvisionContext, ProvisionResult } from "./providers/types.js";
export { TerminalConnection, type TerminalOpenOptions } from "./cli/terminal-client.js";
export { defaultSettings } from "./config/settings.js";
export type { ArtifactInfo } from "./artifact-info.js";
export type { ArtifactCatalog, ArtifactRecord } from "./artifacts/catalog.js";
export { ArtifactStore } from "./artifacts/store.js";
export {
  RELEASE_KEY_FILE,
  type ReleaseKey,
  ensureReleaseKey,
  ensureReleaseKeyFile,
  releaseKeyPath,
} from "./artifacts/release-key.js";
export { hashSecret, newAgentCredential } from "./auth/secrets.js";
export { AzureProvider, type AzureProviderOptions } from "./providers/azure/azure-provider.js";
export { chooseCredential } from "./providers/azure/credential.js";
