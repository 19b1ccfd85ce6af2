/**
 * Where and how the link dials: the agent endpoint URL from whatever base URL an operator
 * gave, and for wss a TLS connection that is checked (CA file or pinned certificate) before
 * the HTTP upgrade — and so the Authorization header — is written to it.
 */
import type { Socket } from "node:net";
import net from "node:net";
import tls from "node:tls";
import { AgentError } from "../errors.js";
import { formatFingerprint } from "../tls/fingerprint.js";

export const AGENT_CONNECT_PATH = "/v1/agent/connect";

/** `http://c:7070` → `ws://c:7070/v1/agent/connect`; a path prefix (reverse proxy) is kept. */
export function connectUrl(base: string): URL {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new AgentError("NBF_INVALID_INPUT", `not a controller URL: ${JSON.stringify(base)}`, { url: base });
  }
  const scheme = { "http:": "ws:", "https:": "wss:", "ws:": "ws:", "wss:": "wss:" }[url.protocol];
  if (!scheme) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      `the controller URL must start with https://, wss://, http:// or ws://, got ${JSON.stringify(base)}`,
      { url: base },
    );
  }
  if (url.username || url.password || url.search || url.hash) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      "the controller URL must not carry credentials, a query or a fragment (the credential travels in a header)",
      { url: `${url.protocol}//${url.host}${url.pathname}` },
    );
  }
  const out = new URL(url.href.replace(/^[a-z]+:/, scheme));
  const prefix = out.pathname.replace(/\/+$/, "");
  if (!prefix.endsWith(AGENT_CONNECT_PATH)) out.pathname = prefix + AGENT_CONNECT_PATH;
  return out;
}

export function isLoopback(url: URL): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

/** The controller's certificate was not accepted; nothing was sent to it. */
export class TlsRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TlsRefusedError";
  }
}

export interface TlsTrust {
  /** PEM of the only CA trusted; without it Node's default trust store is used. */
  ca?: string;
  /** Uppercase colon hex SHA-256 of the controller's own certificate. */
  fingerprintSha256?: string;
}

type ConnectOptions = { host?: string; port?: number | string; servername?: string };
type Created = (error: Error | null, socket?: Socket) => void;

/**
 * A `createConnection` for ws/https: completes the TLS handshake and the checks, and only
 * then hands the socket to the HTTP request. With a pin and no CA the chain is not checked
 * (a self-signed controller), the pin is; without a pin the chain and host name always are.
 */
export function verifiedTlsConnection(trust: TlsTrust, timeoutMs: number) {
  const pin = trust.fingerprintSha256 ? formatFingerprint(trust.fingerprintSha256) : undefined;
  return (options: ConnectOptions, callback: Created): undefined => {
    const host = options.host ?? "localhost";
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
      servername: options.servername || (net.isIP(host) ? "" : host),
      ...(trust.ca ? { ca: trust.ca } : {}),
      rejectUnauthorized: pin === undefined || trust.ca !== undefined,
    });
    const onError = (error: NodeJS.ErrnoException) => {
      socket.destroy();
      finish(isCertificateError(error) ? refusal(where, trust, error) : error);
    };
    socket.setTimeout(timeoutMs, () =>
      onError(new Error(`no TLS handshake with ${where} within ${timeoutMs} ms`)),
    );
    socket.once("error", onError);
    socket.once("secureConnect", () => {
      socket.setTimeout(0);
      socket.off("error", onError);
      if (pin !== undefined) {
        const served = socket.getPeerX509Certificate();
        const got = served ? formatFingerprint(served.fingerprint256) : "no certificate";
        if (got !== pin) {
          socket.destroy();
          finish(
            new TlsRefusedError(
              `refusing the controller at ${where}: its certificate has SHA-256 ${got}, ` +
                `but ${pin} is pinned; nothing was sent to it`,
            ),
          );
          return;
        }
      }
      finish(null, socket);
    });
    return undefined;
  };
}

function isCertificateError(error: NodeJS.ErrnoException): boolean {
  const code = error.code ?? "";
  return (
    code.startsWith("ERR_TLS_CERT") ||
    /CERT|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ISSUER/.test(code) ||
    code === "ERR_SSL_WRONG_VERSION_NUMBER"
  );
}

function refusal(where: string, trust: TlsTrust, error: NodeJS.ErrnoException): TlsRefusedError {
  const trusted = trust.ca ? "the given CA file" : "the system trust store";
  const hint =
    error.code === "ERR_SSL_WRONG_VERSION_NUMBER"
      ? "the controller does not speak TLS there (use ws:// or http:// for a plain controller)"
      : `its certificate is not trusted by ${trusted} (${error.code}: ${error.message})`;
  return new TlsRefusedError(`refusing the controller at ${where}: ${hint}; nothing was sent to it`);
}
