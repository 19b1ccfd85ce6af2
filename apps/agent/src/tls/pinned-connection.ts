/**
 * TLS to the agent's own notebook server, pinned to the certificate the agent keeps in the
 * profile: a socket is handed to the HTTP request (or WebSocket) only after the server showed
 * exactly that certificate, so the agent token in the request's header reaches that server and
 * no other (not a local process that grabbed the port while the notebook was down). The chain
 * is not judged: the certificate is usually self-signed, and an exact pin is stricter than any
 * chain.
 */
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import net from "node:net";
import type { Socket } from "node:net";
import tls from "node:tls";
import { formatFingerprint } from "./fingerprint.js";

const MAX_CERT_FILE_BYTES = 1024 * 1024;

/** The SHA-256 fingerprint of the (first) certificate in a PEM file. */
export async function certificateFileFingerprint(certFile: string): Promise<string> {
  const pem = await readFile(certFile);
  if (pem.length > MAX_CERT_FILE_BYTES) {
    throw new Error(`${certFile} is larger than ${MAX_CERT_FILE_BYTES} bytes`);
  }
  return formatFingerprint(new X509Certificate(pem).fingerprint256);
}

/** The server showed a certificate other than the pinned one; nothing was sent to it. */
export class PinMismatchError extends Error {
  constructor(
    readonly where: string,
    readonly served: string,
    readonly pinned: string,
  ) {
    super(
      `${where} served a certificate with SHA-256 ${served}, not the profile's ${pinned}; nothing was sent to it`,
    );
    this.name = "PinMismatchError";
  }
}

type ConnectOptions = { host?: string; port?: number | string; servername?: string };
type Created = (error: Error | null, socket?: Socket) => void;

/** A `createConnection` for `https.request` and `ws` that accepts only the pinned certificate. */
export function pinnedConnection(fingerprintSha256: string, timeoutMs: number) {
  const pin = formatFingerprint(fingerprintSha256);
  return (options: ConnectOptions, callback: Created): undefined => {
    const host = (options.host ?? "127.0.0.1").replace(/^\[|\]$/g, "");
    const where = `${net.isIPv6(host) ? `[${host}]` : host}:${options.port}`;
    let done = false;
    const finish = (error: Error | null, socket?: Socket) => {
      if (done) return;
      done = true;
      callback(error, socket);
    };
    const socket = tls.connect({
      host,
      port: Number(options.port),
      // SNI must be a host name (RFC 6066 3), never an IP address.
      ...(options.servername || !net.isIP(host) ? { servername: options.servername || host } : {}),
      // Judged below, by the exact certificate, before anything is written.
      rejectUnauthorized: false,
    });
    const onError = (error: Error) => {
      socket.destroy();
      finish(error);
    };
    socket.setTimeout(timeoutMs, () =>
      onError(new Error(`no TLS handshake with ${where} within ${timeoutMs} ms`)),
    );
    socket.once("error", onError);
    socket.once("secureConnect", () => {
      socket.setTimeout(0);
      socket.off("error", onError);
      const served = socket.getPeerX509Certificate();
      const got = served ? formatFingerprint(served.fingerprint256) : "no certificate";
      if (got !== pin) {
        socket.destroy();
        finish(new PinMismatchError(where, got, pin));
        return;
      }
      finish(null, socket);
    });
    return undefined;
  };
}
