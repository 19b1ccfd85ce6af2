/**
 * The three Resource Manager clients nbfleet uses, built with one set of options: the
 * credential, the endpoint (Azure's, or the emulator's with its CA trusted), retries (429 and
 * 5xx are retried by the SDK, honouring Retry-After), a deadline for each HTTP attempt (one that
 * gets no answer in time is retried like a dropped connection), and a counting policy so a
 * caller can see how many attempts, writes, 429s and 5xx answers a piece of work took.
 */
import { ComputeManagementClient } from "@azure/arm-compute";
import { NetworkManagementClient } from "@azure/arm-network";
import { ResourceManagementClient } from "@azure/arm-resources";
import type { TokenCredential } from "@azure/core-auth";
import { type PipelinePolicy, RestError } from "@azure/core-rest-pipeline";

export interface AzureClients {
  resources: ResourceManagementClient;
  network: NetworkManagementClient;
  compute: ComputeManagementClient;
}

export interface RetrySettings {
  maxRetries: number;
  retryDelayInMs: number;
  maxRetryDelayInMs: number;
}

export const DEFAULT_RETRY: RetrySettings = {
  maxRetries: 8,
  retryDelayInMs: 1000,
  maxRetryDelayInMs: 30_000,
};

/** HTTP attempts as the SDK made them (a retried request counts once per attempt). */
export interface CallCounters {
  attempts: number;
  writes: number;
  throttled: number;
  serverErrors: number;
}

export interface ClientSettings {
  subscriptionId: string;
  credential: TokenCredential;
  /** Resource Manager endpoint; Azure's public cloud when null. */
  endpoint: string | null;
  /** PEM of the CA to trust for `endpoint` (the emulator's). */
  caPem: string | null;
  retry: RetrySettings;
  /** How long one HTTP attempt may wait for Azure's answer. */
  requestTimeoutMs: number;
  counters: CallCounters;
}

const WRITES = new Set(["PUT", "PATCH", "POST", "DELETE"]);

function countingPolicy(counters: CallCounters): PipelinePolicy {
  return {
    name: "nbfleetCallCounter",
    async sendRequest(request, next) {
      counters.attempts += 1;
      if (WRITES.has(request.method)) counters.writes += 1;
      const response = await next(request);
      if (response.status === 429) counters.throttled += 1;
      else if (response.status >= 500) counters.serverErrors += 1;
      return response;
    },
  };
}

/**
 * Ends an attempt that gets no answer within `timeoutMs`. Its error is a RestError with code
 * ETIMEDOUT, so the SDK's retry policy retries it like a dropped connection; an abort the caller asked for (its
 * operation deadline) passes through unchanged.
 */
function requestTimeoutPolicy(timeoutMs: number): PipelinePolicy {
  return {
    name: "nbfleetRequestTimeout",
    async sendRequest(request, next) {
      request.timeout = timeoutMs;
      try {
        return await next(request);
      } catch (error) {
        if ((error as { name?: string })?.name !== "AbortError" || request.abortSignal?.aborted) throw error;
        const where = new URL(request.url).pathname;
        throw new RestError(`Azure did not answer ${request.method} ${where} within ${timeoutMs / 1000} s`, {
          code: "ETIMEDOUT",
          request,
        });
      }
    },
  };
}

export function makeClients(settings: ClientSettings): AzureClients {
  const options = {
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    ...(settings.caPem ? { tlsOptions: { ca: settings.caPem } } : {}),
    retryOptions: settings.retry,
    userAgentOptions: { userAgentPrefix: "nbfleet" },
    additionalPolicies: [
      { policy: countingPolicy(settings.counters), position: "perRetry" as const },
      { policy: requestTimeoutPolicy(settings.requestTimeoutMs), position: "perRetry" as const },
    ],
  };
  return {
    resources: new ResourceManagementClient(settings.credential, settings.subscriptionId, options),
    network: new NetworkManagementClient(settings.credential, settings.subscriptionId, options),
    compute: new ComputeManagementClient(settings.credential, settings.subscriptionId, options),
  };
}
