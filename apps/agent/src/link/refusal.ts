/**
 * What the controller said when it refused the WebSocket upgrade (an unknown credential is
 * answered 401 before any WebSocket exists): the HTTP status and the API error's code and
 * message from the body, read with a size cap and a deadline.
 */
import type { IncomingMessage } from "node:http";

export interface UpgradeRefusal {
  status: number;
  /** The API error code (`NBF_…`), when the body carried one. */
  code: string | null;
  message: string;
}

const MAX_BODY_BYTES = 4096;

export function readRefusal(response: IncomingMessage, timeoutMs: number): Promise<UpgradeRefusal> {
  const status = response.statusCode ?? 0;
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      response.removeAllListeners("data");
      resolve({ status, ...describe(Buffer.concat(chunks).toString("utf8"), status) });
    };
    const timer = setTimeout(finish, timeoutMs);
    response.on("data", (chunk: Buffer) => {
      if (size >= MAX_BODY_BYTES) return finish();
      chunks.push(chunk.subarray(0, MAX_BODY_BYTES - size));
      size += chunk.length;
    });
    response.once("end", finish);
    response.once("close", finish);
    response.once("error", finish);
  });
}

function describe(body: string, status: number): { code: string | null; message: string } {
  try {
    const error = (JSON.parse(body) as { error?: { code?: unknown; message?: unknown; details?: unknown } })
      .error;
    if (error && typeof error.code === "string" && typeof error.message === "string") {
      const reason = (error.details as { reason?: unknown } | undefined)?.reason;
      const message = typeof reason === "string" ? `${error.message} (${reason})` : error.message;
      return { code: error.code, message: message.slice(0, 1024) };
    }
  } catch {
    // not the API's JSON error: described by its status below
  }
  return { code: null, message: `HTTP ${status}` };
}
