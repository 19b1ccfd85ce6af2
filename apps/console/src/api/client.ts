/**
 * Same-origin calls to the controller's API with the session cookie. Errors come back as
 * `ApiFailure` carrying the API's `{error: {code, message}}`; a 401 sends the browser to the
 * sign-in page (the session expired or was revoked).
 */
import type { ApiError } from "@nbfleet/shared";

export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const SIGN_IN_PATH = "/sign-in";

export function goToSignIn(): void {
  if (location.pathname === SIGN_IN_PATH) return;
  const next = location.pathname + location.search;
  location.assign(`${SIGN_IN_PATH}?next=${encodeURIComponent(next)}`);
}

interface CallOptions {
  method?: "GET" | "POST" | "PUT" | "DELETE";
  body?: unknown;
  signal?: AbortSignal;
  /** Leave a 401 to the caller (the sign-in form). */
  noRedirect?: boolean;
}

export async function api<T>(path: string, options: CallOptions = {}): Promise<T> {
  const init: RequestInit = {
    method: options.method ?? "GET",
    credentials: "same-origin",
    headers: { accept: "application/json" },
  };
  if (options.signal) init.signal = options.signal;
  if (options.body !== undefined) {
    init.headers = { accept: "application/json", "content-type": "application/json" };
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failureOf(response, options.noRedirect ?? false);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

export async function failureOf(response: Response, noRedirect = false): Promise<ApiFailure> {
  if (response.status === 401 && !noRedirect) goToSignIn();
  let body: Partial<ApiError> | null = null;
  try {
    body = (await response.json()) as Partial<ApiError>;
  } catch {
    body = null;
  }
  const code = body?.error?.code ?? `HTTP_${response.status}`;
  const message = body?.error?.message ?? `${response.status} ${response.statusText}`.trim();
  return new ApiFailure(response.status, code, message);
}

export function errorText(error: unknown): string {
  if (error instanceof ApiFailure) return `${error.code}: ${error.message}`;
  if (error instanceof Error) return error.message;
  return String(error);
}

export const vmPath = (name: string) => `/v1/vms/${encodeURIComponent(name)}`;
