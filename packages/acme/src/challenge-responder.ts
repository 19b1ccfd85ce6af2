/**
 * An answer to an ACME challenge on a port of its own, served only while the CA validates it:
 * HTTP-01 (the key authorization at /.well-known/acme-challenge/<token>, RFC 8555 §8.3) or
 * TLS-ALPN-01 (a self-signed certificate carrying the key authorization's digest, offered only
 * to `acme-tls/1` clients, RFC 8737).
 */
import { type Server as HttpServer, createServer as createHttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { type Server as TlsServer, createServer as createTlsServer } from "node:tls";
import acme from "acme-client";
import { AcmeError } from "./error.js";

export type ChallengeType = "http-01" | "tls-alpn-01";

export interface ChallengeResponder {
  readonly port: number;
  close(): Promise<void>;
}

export interface RespondOptions {
  type: ChallengeType;
  port: number;
  /** The address to listen on; all of the machine's by default. */
  host?: string;
  token: string;
  keyAuthorization: string;
  /** The authorization being answered (TLS-ALPN-01 puts its identifier in the certificate). */
  authz: acme.Authorization;
}

const HTTP_PREFIX = "/.well-known/acme-challenge/";

export async function startChallengeResponder(options: RespondOptions): Promise<ChallengeResponder> {
  const server = options.type === "http-01" ? httpResponder(options) : await tlsAlpnResponder(options);
  await new Promise<void>((resolve, reject) => {
    const failed = (error: NodeJS.ErrnoException) =>
      reject(
        new AcmeError(
          `cannot answer the ${options.type} challenge on port ${options.port}: ${error.code === "EADDRINUSE" ? "another process listens there" : error.code === "EACCES" ? "binding it needs root or CAP_NET_BIND_SERVICE" : error.message}; the current certificate was kept`,
          { port: options.port, challenge: options.type },
        ),
      );
    server.once("error", failed);
    server.listen(options.port, options.host, () => {
      server.off("error", failed);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // The CA may hold connections open; the answer is no longer needed.
        if ("closeAllConnections" in server) server.closeAllConnections();
      }),
  };
}

function httpResponder(options: RespondOptions): HttpServer {
  return createHttpServer((request, response) => {
    const url = request.url ?? "";
    if (request.method === "GET" && url === `${HTTP_PREFIX}${options.token}`) {
      response.writeHead(200, { "content-type": "application/octet-stream" });
      response.end(options.keyAuthorization);
      return;
    }
    response.writeHead(404, { "content-type": "text/plain" });
    response.end("not found\n");
  });
}

/**
 * The TLS-ALPN-01 certificate (RFC 8737 §3: the identifier as its only name, the key
 * authorization's SHA-256 in the critical acmeIdentifier extension) and its key, PEM; for a
 * caller answering on a listener of its own, to a client that asks for `acme-tls/1` only.
 */
export async function alpnChallengePair(
  authz: acme.Authorization,
  keyAuthorization: string,
): Promise<{ keyPem: string; certPem: string }> {
  // ECDSA P-256 like the certificates served beside it: OpenSSL keeps one certificate per key
  // type, so on a shared listener an RSA challenge certificate would sit next to the served ECDSA
  // one and the client would still be shown the latter.
  const [key, cert] = await acme.crypto.createAlpnCertificate(
    authz,
    keyAuthorization,
    await acme.crypto.createPrivateEcdsaKey("P-256"),
  );
  return { keyPem: key.toString(), certPem: cert.toString() };
}

async function tlsAlpnResponder(options: RespondOptions): Promise<TlsServer> {
  const { keyPem: key, certPem: cert } = await alpnChallengePair(options.authz, options.keyAuthorization);
  const server = createTlsServer({ key, cert, ALPNProtocols: ["acme-tls/1"] });
  // The handshake is the whole answer; the validating CA closes the connection itself.
  server.on("secureConnection", (socket) => socket.end());
  server.on("tlsClientError", () => {});
  return server;
}
