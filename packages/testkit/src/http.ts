import { setTimeout as sleep } from "node:timers/promises";
import type { NbfleetApp } from "@nbfleet/controller";
/** Small helpers for tests that drive the API through `app.inject()`. */
import type { LightMyRequestResponse } from "fastify";

export type Method = "GET" | "POST" | "DELETE" | "PUT" | "PATCH";

export function call(
  app: NbfleetApp,
  method: Method,
  url: string,
  options: { token?: string | null; body?: unknown; headers?: Record<string, string> } = {},
): Promise<LightMyRequestResponse> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  return app.inject({
    method,
    url,
    headers,
    ...(options.body === undefined
      ? {}
      : typeof options.body === "string"
        ? { payload: options.body, headers: { "content-type": "application/json", ...headers } }
        : { payload: options.body as object }),
  });
}

/** Polls `read` until `done` holds (for state that arrives asynchronously over the gateway). */
export async function eventually<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  timeoutMs = 10_000,
  intervalMs = 20,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline)
      throw new Error(
        `condition not met within ${timeoutMs} ms; last value: ${JSON.stringify(value)?.slice(0, 500)}`,
      );
    await sleep(intervalMs);
  }
}
