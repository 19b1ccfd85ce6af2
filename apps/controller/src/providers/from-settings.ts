/**
 * The provider the settings ask for (`provider`: `local` or `azure`), built with everything it
 * needs: the agent artifact, what guests trust for this controller's TLS, and for Azure the
 * subscription, region, resource group, credential and (offline) the emulator's endpoint and CA.
 */
import type { ArtifactInfo } from "../artifact-info.js";
import { configSource } from "../config/config-source.js";
import type { ControllerSettings } from "../config/settings.js";
import type { GuestTrust } from "../tls/files.js";
import { AzureProvider } from "./azure/azure-provider.js";
import { chooseCredential } from "./azure/credential.js";
import { LocalProvider } from "./local/local-provider.js";
import { sandboxRoot } from "./local/sandbox-root.js";
import type { Provider } from "./types.js";

const { invalid, read: readSetting } = configSource("provider settings");

export interface ProviderNeeds {
  artifact: ArtifactInfo;
  /** The release public key (SPKI PEM) guests verify upgrade artifacts with. */
  releasePublicKeyPem?: string;
  trust?: GuestTrust;
  log?: { info(obj: object, msg?: string): void; warn(obj: object, msg?: string): void };
}

export async function providerFromSettings(
  settings: ControllerSettings,
  needs: ProviderNeeds,
): Promise<Provider> {
  if (settings.provider === "local") {
    return new LocalProvider({
      root: await sandboxRoot(settings.dataDir),
      artifact: needs.artifact,
      ...(needs.releasePublicKeyPem ? { releasePublicKeyPem: needs.releasePublicKeyPem } : {}),
      ...(needs.trust ? { controllerTrust: needs.trust } : {}),
    });
  }
  if (!settings.azureSubscriptionId) {
    throw invalid("provider azure needs a subscription: set AZURE_SUBSCRIPTION_ID (azureSubscriptionId)");
  }
  if (settings.azureCaFile && !settings.azureEndpoint) {
    throw invalid("NBFLEET_AZURE_CA_FILE is only for an emulator endpoint: set NBFLEET_AZURE_ENDPOINT too");
  }
  const list = (value: string) =>
    value
      .split(",")
      .map((part) => part.trim())
      .filter(Boolean);
  return new AzureProvider({
    subscriptionId: settings.azureSubscriptionId,
    location: settings.azureLocation,
    resourceGroup: settings.azureResourceGroup,
    artifact: needs.artifact,
    ...(needs.releasePublicKeyPem ? { releasePublicKeyPem: needs.releasePublicKeyPem } : {}),
    credential: chooseCredential({ endpoint: settings.azureEndpoint }),
    endpoint: settings.azureEndpoint,
    caPem: settings.azureCaFile ? readSetting(settings.azureCaFile, "NBFLEET_AZURE_CA_FILE") : null,
    vmSize: settings.azureVmSize,
    image: settings.azureImage,
    adminUsername: settings.azureAdminUsername,
    sshPublicKey: settings.azureSshPublicKeyFile
      ? readSetting(settings.azureSshPublicKeyFile, "NBFLEET_AZURE_SSH_PUBLIC_KEY_FILE").trim()
      : null,
    notebookSourceRanges: list(settings.azureNotebookSources),
    sshSourceRanges: settings.azureSshSources ? list(settings.azureSshSources) : null,
    maxConcurrency: settings.azureMaxConcurrency,
    operationTimeoutMs: settings.azureOperationTimeoutSec * 1000,
    requestTimeoutMs: settings.azureRequestTimeoutSec * 1000,
    ...(needs.trust ? { controllerTrust: needs.trust } : {}),
    ...(needs.log ? { log: needs.log } : {}),
  });
}
