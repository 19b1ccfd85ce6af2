/**
 * A raw agent connection for gateway tests: no protocol logic, every message kept, the close
 * (code and reason) or the refused upgrade (HTTP status and JSON body) as promises.
 */

import { AGENT_CONNECT_PATH, AGENT_VERSION, PROTOCOL_VERSION } from "@nbfleet/shared";
import WebSocket from "ws";
import { simState } from "./sim-agent.js";

export type Upgrade = { ok: true } | { ok: false; status: number; body: unknown };

export interface RawAgent {
  ws: WebSocket;
  messages: unknown[];
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves once upgraded, or with the controller's HTTP answer when it refused the upgrade. */
  upgraded: Promise<Upgrade>;
  opened: Promise<void>;
}

export function openRaw(
  baseUrl: string,
  token: string | null,
  options: WebSocket.ClientOptions = {},
): RawAgent {
  const ws = new WebSocket(baseUrl.replace(/^http/, "ws") + AGENT_CONNECT_PATH, {
    headers: token ? { authorization: `Bearer ${token}` } : {},
    perMessageDeflate: false,
    ...options,
  });
  const messages: unknown[] = [];
  ws.on("message", (data) => messages.push(JSON.parse(String(data))));
  ws.on("error", () => {});
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on("close", (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  const upgraded = new Promise<Upgrade>((resolve) => {
    ws.on("open", () => resolve({ ok: true }));
    ws.on("unexpected-response", (_request, response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          // kept as text
        }
        resolve({ ok: false, status: response.statusCode ?? 0, body });
        ws.terminate();
      });
    });
  });
  const opened = upgraded.then((result) => {
    if (!result.ok)
      throw new Error(`upgrade refused with HTTP ${result.status}: ${JSON.stringify(result.body)}`);
  });
  opened.catch(() => {});
  return { ws, messages, closed, upgraded, opened };
}

export function rawHello(overrides: Record<string, unknown> = {}): string {
  return JSON.stringify({
    v: PROTOCOL_VERSION,
    id: `h-${Math.random()}`,
    type: "hello",
    agent: { version: AGENT_VERSION, hostname: "raw", os: "linux", arch: "x64" },
    capabilities: [],
    state: simState({
      state: "running",
      pid: 7,
      port: 9999,
      restarts: 0,
      startedAt: new Date().toISOString(),
    }),
    ...overrides,
  });
}
