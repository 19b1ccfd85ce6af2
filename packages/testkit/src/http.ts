/** Small helpers for tests that drive the API through `app.inject()`. */

import type { NbfleetApp } from "@nbfleet/controller";
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
