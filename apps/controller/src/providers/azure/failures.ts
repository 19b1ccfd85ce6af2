/**
 * What an Azure failure says, in one line a person can act on: Resource Manager's code and
 * message (from a RestError or a failed long-running operation), the HTTP status, and for
 * credential failures what was tried.
 */
export interface AzureFailure {
  code: string | null;
  status: number | null;
  message: string;
}

export function azureFailure(error: unknown): AzureFailure {
  const e = error as { code?: unknown; statusCode?: unknown; message?: unknown; name?: unknown };
  const message = typeof e?.message === "string" ? e.message : String(error);
  // A failed long-running operation: "The long-running operation has failed. <Code>. <Message>"
  const lro = /^The long-running operation has failed\. ([A-Za-z0-9_.]+)\. ([\s\S]*)$/.exec(message);
  if (lro) return { code: lro[1]!, status: null, message: lro[2]!.trim() };
  return {
    code: typeof e?.code === "string" ? e.code : null,
    status: typeof e?.statusCode === "number" ? e.statusCode : null,
    message: message.trim(),
  };
}

/** `AllocationFailed: Allocation failed… (HTTP 409)` */
export function describeAzureFailure(error: unknown): string {
  const failure = azureFailure(error);
  const head = failure.code ? `${failure.code}: ${failure.message}` : failure.message;
  return failure.status ? `${head} (HTTP ${failure.status})` : head;
}

export const isNotFound = (error: unknown): boolean => (error as { statusCode?: number })?.statusCode === 404;

export const isAuthFailure = (error: unknown): boolean => {
  const e = error as { statusCode?: number; name?: string };
  return (
    e?.statusCode === 401 ||
    e?.statusCode === 403 ||
    e?.name === "AuthenticationError" ||
    e?.name === "AggregateAuthenticationError" ||
    e?.name === "CredentialUnavailableError"
  );
};
