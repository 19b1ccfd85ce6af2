/**
 * The CLI's HTTP client for the controller API: bearer token, JSON, and API errors turned into
 * CliErrors that keep the server's code and message.
 */
import type { ApiError } from "@nbfleet/shared";

export class CliError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** Exit codes: 0 ok, 1 failure, 2 bad usage or input, 3 not found, 4 timed out waiting. */
export const ExitCode = { failure: 1, usage: 2, notFound: 3, timeout: 4 } as const;

export interface ClientOptions {
  url: string;
  token: string | undefined;
}

export class ApiClient {
  constructor(private readonly options: ClientOptions) {}

  /** The bearer token (for the terminal's WebSocket, which fetch cannot open). */
  get token(): string | undefined {
    return this.options.token;
  }

  get baseUrl(): string {
    return this.options.url.replace(/\/+$/, "");
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>("GET", path);
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>("POST", path, body ?? {});
  }

  /** POSTs raw bytes (an artifact upload) with their content type; the answer is JSON. */
  async upload<T>(path: string, bytes: Uint8Array, contentType: string): Promise<T> {
    const response = await this.fetch("POST", path, new RawBody(bytes), { "content-type": contentType });
    if (!response.ok) throw await toCliError(response);
    return (await response.json()) as T;
  }

  delete(path: string): Promise<void> {
    return this.request<void>("DELETE", path);
  }

  /** Opens a streaming GET (SSE); the caller reads the body. */
  async stream(path: string, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<Response> {
    const response = await this.fetch(
      "GET",
      path,
      undefined,
      { accept: "text/event-stream", ...headers },
      signal,
    );
    if (!response.ok) throw await toCliError(response);
    return response;
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.fetch(method, path, body);
    if (!response.ok) throw await toCliError(response);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }

  private async fetch(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
    signal?: AbortSignal,
  ): Promise<Response> {
    const url = `${this.baseUrl}${path}`;
    try {
      return await fetch(url, {
        method,
        headers: {
          ...(body !== undefined && !(body instanceof RawBody) ? { "content-type": "application/json" } : {}),
          ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
          ...headers,
        },
        ...(body instanceof RawBody
          ? { body: body.bytes }
          : body !== undefined
            ? { body: JSON.stringify(body) }
            : {}),
        ...(signal ? { signal } : {}),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(
        "NBF_CONTROLLER_UNREACHABLE",
        `cannot reach the controller at ${this.baseUrl} (${cause?.code ?? cause?.message ?? String(error)}); is it running? (pnpm start, or set NBFLEET_URL)`,
        ExitCode.failure,
      );
    }
  }
}

/** A request body sent as is (not as JSON). */
class RawBody {
  constructor(readonly bytes: Uint8Array) {}
}

async function toCliError(response: Response): Promise<CliError> {
  const text = await response.text();
  let parsed: ApiError | undefined;
  try {
    parsed = JSON.parse(text) as ApiError;
  } catch {
    parsed = undefined;
  }
  const code = parsed?.error?.code ?? `HTTP_${response.status}`;
  const message = parsed?.error?.message ?? (text || response.statusText);
  const exit =
    response.status === 404
      ? ExitCode.notFound
      : response.status === 400 || response.status === 409 || response.status === 413
        ? ExitCode.usage
        : ExitCode.failure;
  return new CliError(code, message, exit);
}
