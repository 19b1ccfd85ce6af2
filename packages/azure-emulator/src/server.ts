/**
 * The emulator on a socket: HTTPS with the emulator's own CA (the Azure SDK sends bearer
 * tokens over TLS only), JSON in and out, one Emulator behind it.
 */
import { mkdir } from "node:fs/promises";
import https from "node:https";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { DEFAULT_DURATIONS, Emulator, type EmulatorConfig } from "./emulator.js";
import { NoGuests } from "./guest/guests.js";
import { guestRoot } from "./guest/root.js";
import { SandboxGuests } from "./guest/sandbox-guests.js";
import type { Durations } from "./resources/types.js";
import { ensureEmulatorTls } from "./tls.js";

const MAX_BODY_BYTES = 4 * 1024 * 1024;

export interface StartOptions {
  /** TLS material, guest sandboxes. */
  dataDir: string;
  /** Default 0: a free port. */
  port?: number;
  host?: string;
  /** `sandbox` (default): a booting Linux VM runs its customData's nbfleet bootstrap; `none`: nothing runs. */
  guests?: "sandbox" | "none";
  durations?: Partial<Durations>;
  token?: string;
  limits?: EmulatorConfig["limits"];
  seed?: number;
  log?: (message: string, fields?: Record<string, unknown>) => void;
}

export interface RunningEmulator {
  /** `https://127.0.0.1:PORT`: the Resource Manager endpoint for the SDK. */
  endpoint: string;
  /** The CA that signed the emulator's certificate (PEM file). */
  caFile: string;
  caPem: string;
  port: number;
  emulator: Emulator;
  /** Stops listening, halts every guest and stops pending operations. */
  close(): Promise<void>;
}

export async function startEmulator(options: StartOptions): Promise<RunningEmulator> {
  const dataDir = path.resolve(options.dataDir);
  // Not 0700: guest sandboxes inside must be reachable by the notebook user (tls/ is 0700 itself).
  await mkdir(dataDir, { recursive: true, mode: 0o755 });
  const tls = await ensureEmulatorTls(dataDir);
  const log = options.log ?? (() => {});
  const guests =
    options.guests === "none" ? new NoGuests() : new SandboxGuests({ root: await guestRoot(dataDir), log });
  const emulator = new Emulator({
    guests,
    durations: { ...DEFAULT_DURATIONS, ...options.durations },
    ...(options.token !== undefined ? { token: options.token } : {}),
    ...(options.limits !== undefined ? { limits: options.limits } : {}),
    ...(options.seed !== undefined ? { seed: options.seed } : {}),
    log,
  });

  const server = https.createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    req.on("end", () => {
      const text = Buffer.concat(chunks).toString("utf8");
      let body: unknown;
      let bodyError: string | undefined;
      if (size > MAX_BODY_BYTES) bodyError = `the body is larger than ${MAX_BODY_BYTES} bytes`;
      else if (text.trim() !== "") {
        try {
          body = JSON.parse(text);
        } catch (error) {
          bodyError = (error as Error).message;
        }
      }
      const url = new URL(req.url ?? "/", `https://${req.headers.host ?? "localhost"}`);
      emulator
        .handle({
          method: req.method ?? "GET",
          url,
          headers: req.headers,
          body,
          ...(bodyError ? { bodyError } : {}),
        })
        .then((response) => {
          const payload =
            response.body === undefined || req.method === "HEAD" ? "" : JSON.stringify(response.body);
          res.writeHead(response.status, {
            ...response.headers,
            ...(payload ? { "content-type": "application/json; charset=utf-8" } : {}),
            "content-length": Buffer.byteLength(payload),
          });
          res.end(payload);
        })
        .catch((error: unknown) => {
          log(`response failed: ${(error as Error).message}`);
          res.destroy();
        });
    });
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const host = options.host ?? "127.0.0.1";
  return {
    endpoint: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    caFile: tls.caFile,
    caPem: tls.caPem,
    port,
    emulator,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await emulator.close();
    },
  };
}
