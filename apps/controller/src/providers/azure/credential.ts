/**
 * Which Azure credential the provider uses, and what to tell a person when it fails.
 * Production: DefaultAzureCredential (environment service principal, workload identity,
 * managed identity, Azure CLI, Azure Developer CLI, Azure PowerShell). Only when an emulator
 * endpoint is configured (NBFLEET_AZURE_ENDPOINT) a static test token is used instead.
 */
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { DefaultAzureCredential } from "@azure/identity";

export const EMULATOR_TOKEN = "nbfleet-emulator";

export interface CredentialChoice {
  credential: TokenCredential;
  /** What was used, for error messages. */
  description: string;
}

export function staticTokenCredential(token: string): TokenCredential {
  return {
    getToken: async (): Promise<AccessToken> => ({ token, expiresOnTimestamp: Date.now() + 3_600_000 }),
  };
}

export function chooseCredential(options: { endpoint: string | null; testToken?: string }): CredentialChoice {
  if (options.endpoint) {
    return {
      credential: staticTokenCredential(options.testToken ?? EMULATOR_TOKEN),
      description: `a static test token (used only because NBFLEET_AZURE_ENDPOINT is set to ${options.endpoint})`,
    };
  }
  return {
    credential: new DefaultAzureCredential(),
    description:
      "DefaultAzureCredential (tries in order: environment AZURE_TENANT_ID + AZURE_CLIENT_ID + AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH, workload identity, managed identity, Azure CLI `az login`, Azure Developer CLI, Azure PowerShell)",
  };
}

/**
 * A credential failure as one message: what was used, what each credential in the chain said
 * (DefaultAzureCredential reports them all), and what to do.
 */
export function credentialProblem(error: unknown, choice: CredentialChoice, subscriptionId: string): string {
  const e = error as {
    name?: string;
    statusCode?: number;
    code?: string;
    message?: string;
    errors?: unknown[];
    response?: { headers?: { get?(name: string): string | undefined } };
  };
  if (e?.statusCode === 401 || e?.statusCode === 403) {
    const what = e.statusCode === 401 ? "refused the credential" : "denied the credential access";
    // A HEAD answer has no body: Azure says why in WWW-Authenticate (error, error_description).
    const challenge = e.response?.headers?.get?.("www-authenticate") ?? "";
    const code = e.code ?? /error="([^"]+)"/.exec(challenge)?.[1] ?? String(e.statusCode);
    const message = e.message || /error_description="([^"]+)"/.exec(challenge)?.[1] || "no reason given";
    return (
      `Azure ${what} (${code}: ${message}); the controller used ${choice.description}. ` +
      `It needs a role such as Contributor on subscription ${subscriptionId} (or on the fleet's resource group).`
    );
  }
  const tried = Array.isArray(e?.errors)
    ? (e.errors as Array<{ name?: string; message?: string }>).map(
        (inner) => `${inner.message ?? inner.name}`.split("\n")[0],
      )
    : [`${e?.message ?? String(error)}`.replace(/\s+/g, " ")];
  return (
    `no Azure credential could be obtained; the controller used ${choice.description}. What each said: ${tried.join(" | ")}. ` +
    "Set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a service principal, give the controller's VM a managed identity, or run `az login`."
  );
}
