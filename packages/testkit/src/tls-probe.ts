/**
 * One GET over TLS to a loopback port as a named server (`servername`), always verified: against
 * `ca` alone (chain and name) — a CA's root, or a self-signed certificate itself (a pin). Answers
 * the status and the served certificate's SHA-256, or the TLS error's code; never throws.
 */
import type { IncomingMessage } from "node:http";
import { request } from "node:https";
import type { TLSSocket } from "node:tls";

export interface TlsProbe {
  status?: number;
  /** SHA-256 of the certificate the server presented, lowercase hex without separators. */
  fingerprint?: string;
  error?: string;
}

export interface TlsProbeTarget {
  port: number;
  servername: string;
  ca: string;
  path?: string;
  timeoutMs?: number;
}

export function tlsProbe(target: TlsProbeTarget): Promise<TlsProbe> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: "127.0.0.1",
        port: target.port,
        path: target.path ?? "/api",
        servername: target.servername,
        agent: false,
        timeout: target.timeoutMs ?? 10_000,
        ca: target.ca,
      },
      (response: IncomingMessage) => {
        const peer = (response.socket as TLSSocket).getPeerCertificate();
        response.resume();
        response.on("end", () =>
          resolve({ status: response.statusCode, fingerprint: fingerprintHex(peer.fingerprint256) }),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", (error: NodeJS.ErrnoException) => resolve({ error: error.code ?? error.message }));
    req.end();
  });
}

/** `AB:CD:…` → `abcd…`, the form `fingerprint` has. */
export function fingerprintHex(fingerprint: string): string {
  return fingerprint.replace(/:/g, "").toLowerCase();
}
