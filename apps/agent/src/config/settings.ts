import { ControllerUrlListSchema, compileValidator } from "@nbfleet/shared";
import { SHA256_COLON_HEX } from "@nbfleet/shared/certificate-pin";
/**
 * The agent's settings: one schema, the defaults in one place, stored as DIR/agent.json.
 * CLI flags override the file; the result is checked before anything acts on it.
 */
import { type Static, Type } from "@sinclair/typebox";

export const RestartPolicy = Type.Object(
  {
    initialBackoffMs: Type.Integer({ minimum: 10, maximum: 600_000 }),
    maxBackoffMs: Type.Integer({ minimum: 10, maximum: 3_600_000 }),
    /** Running this long without a crash resets the backoff. */
    stableMs: Type.Integer({ minimum: 10, maximum: 86_400_000 }),
    /** This many crashes inside crashWindowMs → `failed`. */
    maxCrashes: Type.Integer({ minimum: 1, maximum: 1000 }),
    crashWindowMs: Type.Integer({ minimum: 100, maximum: 86_400_000 }),
  },
  { additionalProperties: false },
);
export type RestartPolicy = Static<typeof RestartPolicy>;

/**
 * How the agent reaches its controller. A null URL means the agent runs standalone. The TLS
 * pins belong to the URLs they were given with, and hold for each of them.
 */
export const LinkSettings = Type.Object(
  {
    /** Base URL (http(s):// or ws(s)://); `/v1/agent/connect` is appended. */
    controllerUrl: Type.Union([
      Type.String({ minLength: 1, maxLength: 2048, pattern: "^(https?|wss?)://" }),
      Type.Null(),
    ]),
    /**
     * Several controllers (replicas) tried in turn, starting with `controllerUrl`, which is
     * their first entry. Absent with a single URL, so a settings file stays as older agents
     * read it.
     */
    controllerUrls: Type.Optional(ControllerUrlListSchema),
    /** A CA certificate (PEM) that alone is trusted for the controller; kept in DIR/state. */
    caFile: Type.Union([Type.String({ minLength: 1, maxLength: 4096 }), Type.Null()]),
    /** SHA-256 of the controller's own certificate, uppercase colon hex: pinned. */
    fingerprintSha256: Type.Union([Type.String({ pattern: SHA256_COLON_HEX }), Type.Null()]),
    /** Reconnect backoff with full jitter: the first ceiling, growing by 2× up to maxBackoffMs. */
    initialBackoffMs: Type.Integer({ minimum: 1, maximum: 60_000 }),
    maxBackoffMs: Type.Integer({ minimum: 1, maximum: 3_600_000 }),
    /** The ceiling after a refusal only an operator can fix (credential, protocol version, TLS). */
    slowBackoffMs: Type.Integer({ minimum: 1, maximum: 3_600_000 }),
    /** A connection that lived this long resets the backoff. */
    stableMs: Type.Integer({ minimum: 1, maximum: 86_400_000 }),
    /** The controller's ping interval as assumed here: 3× without a word means it is gone. */
    pingIntervalSec: Type.Number({ minimum: 0.01, maximum: 3600 }),
  },
  { additionalProperties: false },
);
export type LinkSettings = Static<typeof LinkSettings>;

/**
 * Where the notebook's certificate comes from: the agent's own self-signed one, or an ACME CA
 * (RFC 8555) for `hostname`, the machine's public DNS name. The challenge is answered by the
 * agent itself, briefly, on `challengePort` (HTTP-01: port 80; TLS-ALPN-01: port 443).
 */
export const CertificateSettings = Type.Object(
  {
    mode: Type.Union([Type.Literal("self-signed"), Type.Literal("acme")]),
    directoryUrl: Type.String({ pattern: "^https://", maxLength: 2048 }),
    /** The ACME account's contact; null registers without one. */
    email: Type.Union([
      Type.String({ minLength: 3, maxLength: 254, pattern: "^[^\\s@]+@[^\\s@]+$" }),
      Type.Null(),
    ]),
    hostname: Type.Union([
      Type.String({
        maxLength: 253,
        pattern:
          "^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$",
      }),
      Type.Null(),
    ]),
    /** A CA certificate (PEM) trusted for the ACME server's own TLS (a private CA; pebble in tests). */
    caFile: Type.Union([Type.String({ minLength: 1, maxLength: 4096 }), Type.Null()]),
    challenge: Type.Union([Type.Literal("http-01"), Type.Literal("tls-alpn-01")]),
    challengePort: Type.Integer({ minimum: 1, maximum: 65535 }),
  },
  { additionalProperties: false },
);
export type CertificateSettings = Static<typeof CertificateSettings>;

export const LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory";

export const AgentSettings = Type.Object(
  {
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    ip: Type.String({ minLength: 1, maxLength: 253 }),
    notebookDir: Type.Union([Type.String({ minLength: 1, maxLength: 4096 }), Type.Null()]),
    baseUrl: Type.String({ minLength: 1, maxLength: 1024, pattern: "^/" }),
    /** The unprivileged user the server runs as when the agent is root. */
    runAs: Type.String({ minLength: 1, maxLength: 32, pattern: "^[a-z_][a-z0-9_-]*\\$?$" }),
    allowRoot: Type.Boolean(),
    /** Extra names and addresses for the self-signed certificate (localhost is always in). */
    hostnames: Type.Array(Type.String({ minLength: 1, maxLength: 253 }), { maxItems: 32 }),
    ips: Type.Array(Type.String({ minLength: 2, maxLength: 45 }), { maxItems: 32 }),
    /**
     * Where people reach the notebook when that is not the server's own address: on Azure
     * `https://<fqdn>/`, the public port redirected to the private one. Null = the server's own.
     */
    publicUrl: Type.Union([
      Type.String({ pattern: "^https://[^\\s/]+(/[^\\s]*)?$", maxLength: 2048 }),
      Type.Null(),
    ]),
    restart: RestartPolicy,
    stopGraceMs: Type.Integer({ minimum: 0, maximum: 600_000 }),
    logMaxBytes: Type.Integer({ minimum: 4096, maximum: 1_073_741_824 }),
    reportIntervalSec: Type.Integer({ minimum: 1, maximum: 3600 }),
    deepCheckIntervalSec: Type.Integer({ minimum: 0, maximum: 86_400 }),
    link: LinkSettings,
    certificate: CertificateSettings,
  },
  { additionalProperties: false },
);
export type AgentSettings = Static<typeof AgentSettings>;

export const DEFAULT_SETTINGS: AgentSettings = {
  port: 9999,
  ip: "0.0.0.0",
  notebookDir: null,
  baseUrl: "/",
  runAs: "nbfleet",
  allowRoot: false,
  hostnames: [],
  ips: [],
  publicUrl: null,
  restart: {
    initialBackoffMs: 1000,
    maxBackoffMs: 60_000,
    stableMs: 60_000,
    maxCrashes: 5,
    crashWindowMs: 300_000,
  },
  stopGraceMs: 10_000,
  logMaxBytes: 10 * 1024 * 1024,
  reportIntervalSec: 15,
  deepCheckIntervalSec: 300,
  link: {
    controllerUrl: null,
    caFile: null,
    fingerprintSha256: null,
    initialBackoffMs: 100,
    maxBackoffMs: 10_000,
    slowBackoffMs: 60_000,
    stableMs: 30_000,
    pingIntervalSec: 30,
  },
  certificate: {
    mode: "self-signed",
    directoryUrl: LETS_ENCRYPT_DIRECTORY,
    email: null,
    hostname: null,
    caFile: null,
    challenge: "http-01",
    challengePort: 80,
  },
};

/** The URLs the link dials, in order; none for a standalone agent. */
export function controllerUrlsOf(link: Pick<LinkSettings, "controllerUrl" | "controllerUrls">): string[] {
  if (link.controllerUrls && link.controllerUrls.length > 0) return [...link.controllerUrls];
  return link.controllerUrl ? [link.controllerUrl] : [];
}

export const settingsValidator = compileValidator(AgentSettings, "agent settings");
export const PartialSettings = Type.Partial(AgentSettings);
export const partialSettingsValidator = compileValidator(PartialSettings, "agent settings file");
