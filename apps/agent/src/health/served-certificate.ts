/** Reads the certificate a TLS server presents, without trusting or verifying it. */
import type { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import tls from "node:tls";

export function fetchServedCertificate(
  host: string,
  port: number,
  timeoutMs: number,
): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host,
      port,
      rejectUnauthorized: false,
      // SNI must be a name, never an address.
      servername: isIP(host) === 0 ? host : undefined,
    });
    const fail = (error: Error) => {
      socket.destroy();
      reject(new Error(`TLS handshake with ${host}:${port} failed: ${error.message}`));
    };
    let connected = false;
    socket.once("connect", () => {
      connected = true;
    });
    socket.setTimeout(timeoutMs, () =>
      fail(
        new Error(
          connected
            ? `connected, but no TLS handshake within ${timeoutMs} ms`
            : `no answer within ${timeoutMs} ms`,
        ),
      ),
    );
    socket.once("error", fail);
    socket.once("secureConnect", () => {
      const certificate = socket.getPeerX509Certificate();
      socket.destroy();
      if (certificate === undefined) reject(new Error(`${host}:${port} presented no certificate`));
      else resolve(certificate);
    });
  });
}
