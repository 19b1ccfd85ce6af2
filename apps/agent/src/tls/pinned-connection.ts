/**
 * TLS connections that are judged before anything is written to them: `checkedConnection` is a
 * `createConnection` for `https.request` and `ws` that completes the handshake, checks the chain
 * (a CA, or the system store) and/or an exact certificate pin, and only then hands the socket to
 * the request — so a header carrying a credential reaches the intended server and no other. The
 * link dials its controller with it; the health checks reach the agent's own notebook with
 * `pinnedConnection`, pinned to the certificate in the profile.
 */
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import net from "node:net";
import type { Socket } from "node:net";
import tls from "node:tls";
import {
  type CertificatePin,
  type PinMatch,
  matchPin,
  publicKeySha256,
} from "@nbfleet/shared/certificate-pin";
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

/** Where a pin's key is kept: read at each handshake, told of it whenever the pinned certificate itself is shown. */
export interface PinnedKeyRecord {
  readonly keySha256: string | null;
  learned(keySha256: string): void;
  /** The certificates a `controller.trust` put in place of the pin (and its key), if any. */
  readonly trusted?: readonly CertificatePin[] | null;
  /** Told of every certificate a handshake accepted. */
  accepted?(served: X509Certificate): void;
}

type ConnectOptions = { host?: string; port?: number | string; servername?: string };
type Created = (error: Error | null, socket?: Socket) => void;

export interface CheckedConnectionOptions {
  /** PEM of the only CA trusted; without it (and without a pin) the system store is used. */
  ca?: string | undefined;
  /** The exact certificate accepted (SHA-256). With a pin and no CA the chain is not judged. */
  pin?: string | undefined;
  /** With `pin`: the pinned certificate's key, once known; a certificate renewed with it passes too. */
  pinnedKey?: PinnedKeyRecord | undefined;
  timeoutMs: number;
  /** What a failed handshake becomes (`where` is host:port). */
  onHandshakeError?: (error: NodeJS.ErrnoException, where: string) => Error;
  /** What a served certificate other than the pinned one becomes. */
  onPinMismatch: (where: string, served: string, pinned: string) => Error;
}

export function checkedConnection(options: CheckedConnectionOptions) {
  const pin = options.pin ? formatFingerprint(options.pin) : undefined;
  return (connect: ConnectOptions, callback: Created): undefined => {
    const host = (connect.host ?? "localhost").replace(/^\[|\]$/g, "");
    const where = `${net.isIPv6(host) ? `[${host}]` : host}:${connect.port}`;
    let done = false;
    const finish = (error: Error | null, socket?: Socket) => {
      if (done) return;
      done = true;
      callback(error, socket);
    };
    const socket = tls.connect({
      host,
      port: Number(connect.port),
      // SNI must be a host name (RFC 6066 3), never an IP address.
      servername: connect.servername || (net.isIP(host) ? "" : host),
      ...(options.ca ? { ca: options.ca } : {}),
      rejectUnauthorized: pin === undefined || options.ca !== undefined,
    });
    const onError = (error: NodeJS.ErrnoException) => {
      socket.destroy();
      finish(options.onHandshakeError ? options.onHandshakeError(error, where) : error);
    };
    socket.setTimeout(options.timeoutMs, () =>
      onError(new Error(`no TLS handshake with ${where} within ${options.timeoutMs} ms`)),
    );
    socket.once("error", onError);
    socket.once("secureConnect", () => {
      socket.setTimeout(0);
      socket.off("error", onError);
      if (pin !== undefined) {
        const served = socket.getPeerX509Certificate();
        const key = options.pinnedKey;
        const match = key?.trusted
          ? matchAny(served, key.trusted)
          : matchPin(served, { certificateSha256: pin, keySha256: key?.keySha256 });
        if (match === null) {
          socket.destroy();
          finish(
            options.onPinMismatch(
              where,
              served ? formatFingerprint(served.fingerprint256) : "no certificate",
              pin,
            ),
          );
          return;
        }
        if (match === "certificate" && key && served && !key.trusted) key.learned(publicKeySha256(served));
        if (served) key?.accepted?.(served);
      }
      finish(null, socket);
    });
    return undefined;
  };
}

function matchAny(served: X509Certificate | undefined, pins: readonly CertificatePin[]): PinMatch {
  for (const pin of pins) {
    const match = matchPin(served, pin);
    if (match !== null) return match;
  }
  return null;
}

/** A connection that accepts only the certificate with this fingerprint (the agent's own notebook). */
export function pinnedConnection(fingerprintSha256: string, timeoutMs: number) {
  return checkedConnection({
    pin: fingerprintSha256,
    timeoutMs,
    onPinMismatch: (where, served, pinned) => new PinMismatchError(where, served, pinned),
  });
}
