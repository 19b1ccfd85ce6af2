/**
 * Connections to another replica. Over http the socket is plain TCP with a connect deadline.
 * When this controller serves HTTPS (tlsCert/tlsKey), peers must too and are verified before a
 * byte is written: with `tlsCa` the peer's chain must lead to that CA and its certificate must
 * name the host of its replica URL; without a CA the peer must present this replica's own
 * certificate (SHA-256 pin), the usual setup where every replica serves the same certificate, or
 * one renewed with the same key (while the replicas are restarted one at a time onto it), or a
 * certificate with the key that peer registered in its `replicas` row (while they are moved one
 * at a time onto a new key, see controller.trust). Trusting the database for that adds no one:
 * whoever can write the table can read the secret relayed requests are signed with.
 */
import net, { type Socket } from "node:net";
import tls from "node:tls";
import {
  type CertificatePin,
  certificateSha256,
  matchPin,
  publicKeySha256,
} from "@nbfleet/shared/certificate-pin";
import type { ControllerSettings } from "../../config/settings.js";
import { readTlsFiles } from "../../tls/files.js";

export interface PeerTrust {
  /** PEM of the CA peers' certificates come from. */
  ca: string | null;
  /** Without a CA: this replica's own certificate, or its key (SHA-256s, uppercase colon hex). */
  pin: CertificatePin | null;
}

/** How this replica verifies the others; null when it serves plain HTTP. */
export function peerTrust(
  settings: Pick<ControllerSettings, "tlsCert" | "tlsKey" | "tlsCa">,
): PeerTrust | null {
  const own = readTlsFiles(settings);
  if (!own) return null;
  return own.caPem
    ? { ca: own.caPem, pin: null }
    : { ca: null, pin: { certificateSha256: own.fingerprintSha256, keySha256: own.keySha256 } };
}

export class PeerUnreachable extends Error {
  constructor(where: string, cause: string) {
    super(`replica at ${where} unreachable: ${cause}`);
    this.name = "PeerUnreachable";
  }
}

type ConnectOptions = { host?: string | null; hostname?: string | null; port?: number | string | null };
type Created = (error: Error | null, socket?: Socket) => void;

/**
 * A `createConnection` for http(s).request and ws that hands over a socket only once it is
 * trusted; `peerKeySha256` is the key the peer registered as served (null: none).
 */
export function peerConnection(
  trust: PeerTrust | null,
  connectTimeoutMs: number,
  peerKeySha256: string | null = null,
) {
  return (options: ConnectOptions, callback: Created): undefined => {
    const host = (options.hostname ?? options.host ?? "localhost").replace(/^\[|\]$/g, "");
    const port = Number(options.port);
    const where = `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
    let done = false;
    const finish = (error: Error | null, socket?: Socket) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (error) socket?.destroy();
      callback(error, error ? undefined : socket);
    };
    const socket = trust
      ? tls.connect({
          host,
          port,
          servername: net.isIP(host) ? "" : host,
          ...(trust.ca ? { ca: trust.ca } : {}),
          // With a pin the chain is not judged (a self-signed certificate); the pin is, below.
          rejectUnauthorized: trust.ca !== null,
        })
      : net.connect({ host, port });
    const timer = setTimeout(
      () => finish(new PeerUnreachable(where, `no connection within ${connectTimeoutMs} ms`), socket),
      connectTimeoutMs,
    );
    socket.once("error", (error: NodeJS.ErrnoException) =>
      finish(new PeerUnreachable(where, error.code ?? error.message), socket),
    );
    socket.once(trust ? "secureConnect" : "connect", () => {
      if (trust?.pin) {
        const served = (socket as tls.TLSSocket).getPeerX509Certificate();
        if (
          matchPin(served, trust.pin) === null &&
          (peerKeySha256 === null || !served || publicKeySha256(served) !== peerKeySha256)
        ) {
          const fingerprint = served ? certificateSha256(served) : "none";
          const registered = peerKeySha256 ? `, nor one with the key it registered (${peerKeySha256})` : "";
          finish(
            new PeerUnreachable(
              where,
              `it served certificate ${fingerprint}, neither this replica's ${trust.pin.certificateSha256} nor one with its key${registered}`,
            ),
            socket,
          );
          return;
        }
      }
      finish(null, socket);
    });
    return undefined;
  };
}
