/**
 * Where and how the link dials: the agent endpoint URL from whatever base URL an operator
 * gave, and for wss a TLS connection that is checked (CA file or pinned certificate) before
 * the HTTP upgrade — and so the Authorization header — is written to it.
 *
 *   planDial (once) ─▶ prepareDial: pick the secret, read the CA file ─▶ dial: one WebSocket
 */
import { AGENT_CONNECT_PATH } from "@nbfleet/shared";
import WebSocket from "ws";
import { AgentError } from "../errors.js";
import { formatFingerprint } from "../tls/fingerprint.js";
import { type PinnedKeyRecord, checkedConnection } from "../tls/pinned-connection.js";
import { readGivenFile } from "../util/read-given-file.js";
import type { LinkOptions } from "./options.js";
import type { LinkSecrets, Secret } from "./secret.js";
import { describePins } from "./trusted-controllers.js";

/** Re-exported for the agent's package index; the path itself lives in @nbfleet/shared. */
export { AGENT_CONNECT_PATH };

const MAX_PAYLOAD = 16 * 1024 * 1024;

export interface DialPlan {
  target: URL;
  /** For wss; the CA file is read into it at each dial. */
  trust: TlsTrust | null;
  caFile: string | undefined;
  credentialFile: string;
  timeoutMs: number;
}

/** What one dial presents and trusts, read just before it; a problem when there is nothing to dial with. */
export type DialReady = { ok: true; secret: Secret; trust: TlsTrust | null } | { ok: false; problem: string };

/** Checks the URL and the TLS options once, before the first dial. */
export function planDial(
  { url, tls = {}, credentialFile }: { url: string } & Pick<LinkOptions, "tls" | "credentialFile">,
  timeoutMs: number,
): DialPlan {
  const target = connectUrl(url);
  const { caFile, fingerprintSha256, pinnedKey } = tls;
  const secure = target.protocol === "wss:";
  if (!secure && (caFile || fingerprintSha256)) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      `a controller CA or fingerprint needs a TLS URL (https:// or wss://), got ${target.origin}`,
      { url: target.href },
    );
  }
  const trust = secure
    ? {
        ...(fingerprintSha256
          ? {
              fingerprintSha256: formatFingerprint(fingerprintSha256),
              ...(pinnedKey ? { key: pinnedKey } : {}),
            }
          : {}),
      }
    : null;
  return { target, trust, caFile, credentialFile, timeoutMs };
}

/** Picks the secret of the moment and reads the CA file (an operator may have replaced it). */
export async function prepareDial(plan: DialPlan, secrets: LinkSecrets): Promise<DialReady> {
  let secret: Secret | null;
  let trust: TlsTrust | null;
  try {
    secret = await secrets.pick();
    trust = await loadTrust(plan);
  } catch (error) {
    return { ok: false, problem: (error as Error).message };
  }
  if (!secret) {
    return {
      ok: false,
      problem: `no controller credential at ${plan.credentialFile} and no bootstrap token to get one`,
    };
  }
  return { ok: true, secret, trust };
}

/** Opens one WebSocket; for wss the TLS checks pass before the upgrade (and the secret) is written. */
export function dial(
  plan: DialPlan,
  { secret, trust }: { secret: Secret; trust: TlsTrust | null },
): WebSocket {
  return new WebSocket(plan.target, {
    headers: { authorization: `Bearer ${secret.value}` },
    perMessageDeflate: false,
    followRedirects: false,
    handshakeTimeout: plan.timeoutMs,
    maxPayload: MAX_PAYLOAD,
    ...(trust
      ? {
          createConnection: verifiedTlsConnection(
            trust,
            plan.timeoutMs,
          ) as unknown as WebSocket.ClientOptions["createConnection"],
        }
      : {}),
  });
}

async function loadTrust({ trust, caFile }: DialPlan): Promise<TlsTrust | null> {
  if (!trust) return null;
  if (!caFile) return trust;
  return { ...trust, ca: await readGivenFile(caFile, "controller CA file") };
}

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
  /** With the fingerprint: its certificate's key, once learned (a renewal with it is accepted). */
  key?: PinnedKeyRecord;
}

/**
 * A `createConnection` for ws/https: completes the TLS handshake and the checks, and only
 * then hands the socket to the HTTP request. With a pin and no CA the chain is not checked
 * (a self-signed controller), the pin is; without a pin the chain and host name always are.
 */
export function verifiedTlsConnection(trust: TlsTrust, timeoutMs: number) {
  return checkedConnection({
    ca: trust.ca,
    pin: trust.fingerprintSha256,
    pinnedKey: trust.key,
    timeoutMs,
    onHandshakeError: (error, where) => (isCertificateError(error) ? refusal(where, trust, error) : error),
    onPinMismatch: (where, got, pin) =>
      new TlsRefusedError(
        `refusing the controller at ${where}: its certificate has SHA-256 ${got}, ` +
          `but ${pin} is pinned${pinnedKeyNote(trust.key)}; nothing was sent to it`,
      ),
  });
}

function pinnedKeyNote(key: PinnedKeyRecord | undefined): string {
  if (!key) return "";
  if (key.trusted) return `, replaced by controller.trust with ${describePins(key.trusted)} (or their keys)`;
  return key.keySha256
    ? `, and its key is not the pinned certificate's (SHA-256 ${key.keySha256})`
    : " (its key is not known yet: a renewed certificate passes only after one connection to the pinned one)";
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
