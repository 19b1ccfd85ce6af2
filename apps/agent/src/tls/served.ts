/**
 * Reads the certificate a TLS endpoint actually serves, so health checks can compare it with
 * the one on disk. Trust is not checked here (the certificate is usually self-signed): the
 * caller compares fingerprints.
 */
import net from "node:net";
import tls from "node:tls";
import { AgentError } from "../errors.js";
import { formatFingerprint } from "./fingerprint.js";

export interface ServedCertificate {
  fingerprintSha256: string;
  notBefore: string;
  notAfter: string;
}

export async function fetchServedCertificate(
  host: string,
  port: number,
  servername?: string,
  options: { timeoutMs?: number } = {},
): Promise<ServedCertificate> {
  const { timeoutMs = 5000 } = options;
  const where = `${host}:${port}`;
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port,
      // SNI must be a host name; sending an IP is invalid (RFC 6066 3).
      servername: servername ?? (net.isIP(host) ? undefined : host),
      rejectUnauthorized: false,
    });
    const fail = (why: string, cause?: unknown) => {
      socket.destroy();
      reject(
        new AgentError("NBF_TLS_UNREACHABLE", `no TLS certificate from ${where}: ${why}`, {
          host,
          port,
          cause,
        }),
      );
    };
    let connected = false;
    socket.once("connect", () => {
      connected = true;
    });
    // Tornado re-reads cert and key per connection; when they do not match it leaves the
    // connection hanging after the TCP handshake, which is worth telling apart.
    socket.setTimeout(timeoutMs, () =>
      fail(
        connected
          ? `connected, but no TLS handshake within ${timeoutMs} ms`
          : `no answer within ${timeoutMs} ms`,
      ),
    );
    socket.once("error", (error) => fail(error.message, (error as NodeJS.ErrnoException).code));
    socket.once("secureConnect", () => {
      const cert = socket.getPeerX509Certificate();
      socket.end();
      if (!cert) {
        fail("the server sent no certificate");
        return;
      }
      resolve({
        fingerprintSha256: formatFingerprint(cert.fingerprint256),
        notBefore: new Date(cert.validFrom).toISOString(),
        notAfter: new Date(cert.validTo).toISOString(),
      });
    });
  });
}
