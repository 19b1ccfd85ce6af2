/**
 * The controller's settings: one schema, the defaults and the environment variable names in one
 * place. Sources, strongest first: flags (what the CLI parsed), environment, a JSON file
 * (`--config` / NBFLEET_CONFIG, else `<dataDir>/config.json` when it exists), defaults.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import {
  ControllerUrlListSchema,
  DNS_NAME_PATTERN,
  compileValidator,
  controllerUrlListProblems,
  splitControllerUrls,
} from "@nbfleet/shared";
import { type Static, Type } from "@sinclair/typebox";
import { NbfError } from "../errors.js";
import { acmeSettingsProblems } from "./acme-settings.js";

const Seconds = (minimum: number, maximum: number) => Type.Number({ minimum, maximum });

export const ControllerSettings = Type.Object(
  {
    /** Where the SQLite file, the admin token and provider state live. */
    dataDir: Type.String({ minLength: 1 }),
    /**
     * PostgreSQL (`postgres://user:pass@host:port/db`, TLS as `pg` spells it: `?sslmode=verify-full&sslrootcert=ca.pem`);
     * null = the embedded SQLite file under `dataDir`. Replicas on one database form one controller.
     */
    databaseUrl: Type.Union([Type.String({ pattern: "^postgres(ql)?://" }), Type.Null()]),
    /** The URL the other replicas reach this one at; derived from `listen` when null. */
    replicaUrl: Type.Union([Type.String({ pattern: "^https?://" }), Type.Null()]),
    /** A replica writes its heartbeat this often; one silent for three intervals is dead. */
    replicaHeartbeatSec: Seconds(0.05, 600),
    /** host:port the HTTP API and agent gateway listen on (port 0 picks a free one). */
    listen: Type.String({ pattern: "^(\\[[0-9a-fA-F:]+\\]|[A-Za-z0-9.-]+):\\d{1,5}$" }),
    /** The URL agents and browsers use to reach this controller; derived from `listen` when null. */
    publicUrl: Type.Union([Type.String({ pattern: "^https?://" }), Type.Null()]),
    /**
     * The controller URLs a new machine's agent dials, tried in turn (replicas, a load balancer);
     * null = the one URL above. Carried by the bootstrap; the agent keeps them in its settings.
     */
    controllerUrls: Type.Union([ControllerUrlListSchema, Type.Null()]),
    /**
     * The release key (Ed25519, PKCS#8 PEM, 0600) that signs agent artifacts; made when missing.
     * One per cluster: every replica needs a copy of the same file. null = `<dataDir>/release-key.pem`.
     */
    releaseKeyFile: Type.Union([Type.String({ minLength: 1 }), Type.Null()]),
    /** Taken as the first admin token instead of generating one. */
    adminToken: Type.Union([Type.String({ minLength: 16, maxLength: 256 }), Type.Null()]),
    /** How long a command waits for an offline agent before it expires. */
    commandTtlSec: Seconds(0.05, 7 * 86_400),
    /** How long an acknowledged command may run before it is timed out. */
    commandTimeoutSec: Seconds(0.05, 86_400),
    /** Steady interval between an agent's state reports (sent to it in the welcome). */
    reportIntervalSec: Type.Integer({ minimum: 1, maximum: 3600 }),
    /** Ping interval; an agent that misses two pings is disconnected. */
    pingIntervalSec: Seconds(0.05, 3600),
    /** An agent must send its hello within this time after connecting. */
    helloTimeoutSec: Seconds(0.05, 600),
    /** A bootstrap token not used within this is refused; `POST /v1/vms/{name}/bootstrap-token` issues another. */
    bootstrapTokenTtlSec: Seconds(1, 365 * 86_400),
    /** Largest WebSocket message accepted from an agent. */
    maxMessageBytes: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024 }),
    /** Largest HTTP request body accepted by the API. */
    bodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 64 * 1024 * 1024 }),
    /** The whole request (headers and body) must arrive within this; 408 and the connection closed otherwise. */
    requestTimeoutSec: Seconds(0.1, 3600),
    /** The request's headers must arrive within this (at most `requestTimeoutSec`). */
    headersTimeoutSec: Seconds(0.1, 600),
    /** An idle keep-alive connection is closed after this long without a new request. */
    keepAliveTimeoutSec: Seconds(0.1, 3600),
    /**
     * Bytes an event stream (`GET /v1/events`) may have waiting for a slow reader; past this the
     * reader is disconnected and resumes with `Last-Event-ID`.
     */
    eventStreamMaxBufferBytes: Type.Integer({ minimum: 16 * 1024, maximum: 256 * 1024 * 1024 }),
    /** `/metrics` figures read from the store (VMs by health) are refreshed at most this often. */
    metricsRefreshSec: Seconds(0.05, 3600),
    /** Who may read `/metrics`: anyone (Prometheus without credentials) or a viewer token. */
    metricsAccess: Type.Union([Type.Literal("public"), Type.Literal("viewer")]),
    /** Latest-state writes are batched: flushed after this many ms or this many items. */
    stateFlushMs: Type.Integer({ minimum: 1, maximum: 60_000 }),
    stateFlushMaxItems: Type.Integer({ minimum: 1, maximum: 100_000 }),
    /** How often queued/acked commands are checked for expiry and timeout. */
    commandSweepMs: Type.Integer({ minimum: 10, maximum: 60_000 }),
    /** Events and finished commands older than this are deleted (checked hourly). */
    historyRetentionDays: Type.Number({ minimum: 0.001, maximum: 3650 }),
    /** A console sign-in (the nbf_session cookie) lasts this long. */
    sessionTtlSec: Seconds(60, 30 * 86_400),
    /**
     * An agent.upgrade operation's default params.timeoutSec: how long a new agent has to
     * connect and report healthy before its guest rolls it back.
     */
    upgradeTimeoutSec: Type.Integer({ minimum: 10, maximum: 3600 }),
    /** The built web console (index.html and assets/); null: found beside the controller. */
    consoleDir: Type.Union([Type.String({ minLength: 1 }), Type.Null()]),
    /** A terminal session with no input and no output for this long is ended. */
    terminalIdleTimeoutSec: Seconds(0.05, 7 * 86_400),
    /** A terminal session no client is attached to is ended after this long (reattach before). */
    terminalDetachedTimeoutSec: Seconds(0.05, 86_400),
    /** Live terminal sessions (attached or not) per VM. */
    terminalMaxSessionsPerVm: Type.Integer({ minimum: 1, maximum: 64 }),
    /** Where machines run: `local` sandboxes or `azure` VMs (see the README's "Provider azure"). */
    provider: Type.Union([Type.Literal("local"), Type.Literal("azure")]),
    /** How often the provider is asked what it holds (machines gone, power states, orphans); 0 = never. */
    reconcileIntervalSec: Type.Number({ minimum: 0, maximum: 86_400 }),
    /** PEM files: with both, the controller serves HTTPS and guests verify it (CA or fingerprint in their bootstrap). */
    tlsCert: Type.Union([Type.String({ minLength: 1 }), Type.Null()]),
    tlsKey: Type.Union([Type.String({ minLength: 1 }), Type.Null()]),
    /** The CA (PEM) guests trust for the controller; without it they pin the certificate's SHA-256. */
    tlsCa: Type.Union([Type.String({ minLength: 1 }), Type.Null()]),
    /**
     * The controller's own certificate from the ACME CA (acmeDirectory) for this DNS name, answered
     * over TLS-ALPN-01 on the listening port; instead of tlsCert/tlsKey. Guests trust the public CA
     * (tlsCa when given) instead of a pin.
     */
    acmeDomain: Type.Union([Type.String({ maxLength: 253, pattern: DNS_NAME_PATTERN }), Type.Null()]),
    /**
     * The ACME directory guests get notebook certificates from (`certificate.mode: acme`).
     * The ACME settings' finer checks, with messages naming the variables: config/acme-settings.ts.
     */
    acmeDirectory: Type.String({ pattern: "^https://", maxLength: 2048 }),
    /** The ACME account's contact (expiry notices from the CA); null = none. */
    acmeEmail: Type.Union([Type.String({ minLength: 3, maxLength: 254 }), Type.Null()]),
    /** PEM CA trusted for the ACME server's own TLS (a private CA, pebble); read at start, sent to guests. */
    acmeCaFile: Type.Union([Type.String({ minLength: 1 }), Type.Null()]),
    /** How the CA validates a guest: HTTP-01 (port 80 by default) or TLS-ALPN-01 (443). */
    acmeChallenge: Type.Union([Type.Literal("http-01"), Type.Literal("tls-alpn-01")]),
    /** The port the guest's agent answers the challenge on; null = 80 for http-01, 443 for tls-alpn-01. */
    acmeChallengePort: Type.Union([Type.Integer({ minimum: 1, maximum: 65_535 }), Type.Null()]),
    /** New VMs' certificate when the request names none: `acme` only where the provider knows a public name. */
    certificateMode: Type.Union([Type.Literal("self-signed"), Type.Literal("acme")]),
    azureSubscriptionId: Type.Union([Type.String({ minLength: 1 }), Type.Null()]),
    azureLocation: Type.String({ pattern: "^[a-z0-9]+$" }),
    azureResourceGroup: Type.String({ pattern: "^[-\\w._()]{1,90}$" }),
    /** A Resource Manager endpoint other than Azure's (the emulator); a static test credential is used then. */
    azureEndpoint: Type.Union([Type.String({ pattern: "^https://" }), Type.Null()]),
    /** PEM CA trusted for `azureEndpoint`. */
    azureCaFile: Type.Union([Type.String({ minLength: 1 }), Type.Null()]),
    azureVmSize: Type.String({ pattern: "^[A-Za-z0-9_]+$" }),
    azureImage: Type.Union([
      Type.Literal("ubuntu-24.04"),
      Type.Literal("ubuntu-22.04"),
      Type.Literal("windows-2022"),
    ]),
    azureAdminUsername: Type.String({ pattern: "^[a-z_][a-z0-9_-]{0,31}$" }),
    /** An OpenSSH public key file for the VMs' admin user; none = no usable SSH login. */
    azureSshPublicKeyFile: Type.Union([Type.String({ minLength: 1 }), Type.Null()]),
    /** Comma-separated sources allowed to reach the notebook port (`*`, `Internet`, CIDRs). */
    azureNotebookSources: Type.String({ minLength: 1 }),
    /** Comma-separated sources allowed to reach SSH (22); null = no SSH rule. */
    azureSshSources: Type.Union([Type.String({ minLength: 1 }), Type.Null()]),
    azureMaxConcurrency: Type.Integer({ minimum: 1, maximum: 100 }),
    /** Longest an Azure machine operation (create, start, stop, delete, …) may take, polls included. */
    azureOperationTimeoutSec: Seconds(1, 7 * 86_400),
    /** Longest one HTTP request to Azure Resource Manager may wait for its answer before it is retried. */
    azureRequestTimeoutSec: Seconds(1, 3600),
    logLevel: Type.Union(
      ["fatal", "error", "warn", "info", "debug", "trace", "silent"].map((level) => Type.Literal(level)),
    ),
  },
  { additionalProperties: false },
);
export type ControllerSettings = Static<typeof ControllerSettings>;

export function defaultSettings(home = homedir()): ControllerSettings {
  return {
    dataDir: join(home, ".nbfleet"),
    databaseUrl: null,
    replicaUrl: null,
    replicaHeartbeatSec: 5,
    listen: "127.0.0.1:7070",
    publicUrl: null,
    controllerUrls: null,
    adminToken: null,
    releaseKeyFile: null,
    commandTtlSec: 600,
    commandTimeoutSec: 300,
    reportIntervalSec: 15,
    pingIntervalSec: 15,
    helloTimeoutSec: 10,
    bootstrapTokenTtlSec: 86_400,
    maxMessageBytes: 1024 * 1024,
    bodyLimitBytes: 256 * 1024,
    requestTimeoutSec: 30,
    headersTimeoutSec: 10,
    keepAliveTimeoutSec: 72,
    eventStreamMaxBufferBytes: 1024 * 1024,
    metricsRefreshSec: 15,
    metricsAccess: "public",
    stateFlushMs: 250,
    stateFlushMaxItems: 500,
    commandSweepMs: 1000,
    historyRetentionDays: 14,
    sessionTtlSec: 43_200,
    upgradeTimeoutSec: 120,
    consoleDir: null,
    terminalIdleTimeoutSec: 1800,
    terminalDetachedTimeoutSec: 300,
    terminalMaxSessionsPerVm: 4,
    provider: "local",
    reconcileIntervalSec: 300,
    tlsCert: null,
    tlsKey: null,
    tlsCa: null,
    acmeDomain: null,
    acmeDirectory: "https://acme-v02.api.letsencrypt.org/directory",
    acmeEmail: null,
    acmeCaFile: null,
    acmeChallenge: "http-01",
    acmeChallengePort: null,
    certificateMode: "self-signed",
    azureSubscriptionId: null,
    azureLocation: "westeurope",
    azureResourceGroup: "nbfleet",
    azureEndpoint: null,
    azureCaFile: null,
    azureVmSize: "Standard_B2s",
    azureImage: "ubuntu-24.04",
    azureAdminUsername: "nbfleet",
    azureSshPublicKeyFile: null,
    azureNotebookSources: "*",
    azureSshSources: null,
    azureMaxConcurrency: 10,
    azureOperationTimeoutSec: 1800,
    azureRequestTimeoutSec: 120,
    logLevel: "info",
  };
}

/** Environment variable → setting. Numbers are parsed; an empty variable counts as unset. */
export const ENV_VARS: Record<string, keyof ControllerSettings> = {
  NBFLEET_DATA_DIR: "dataDir",
  NBFLEET_DATABASE_URL: "databaseUrl",
  NBFLEET_REPLICA_URL: "replicaUrl",
  NBFLEET_REPLICA_HEARTBEAT_SEC: "replicaHeartbeatSec",
  NBFLEET_LISTEN: "listen",
  NBFLEET_PUBLIC_URL: "publicUrl",
  /** Comma-separated. */
  NBFLEET_CONTROLLER_URLS: "controllerUrls",
  NBFLEET_ADMIN_TOKEN: "adminToken",
  NBFLEET_RELEASE_KEY_FILE: "releaseKeyFile",
  NBFLEET_COMMAND_TTL_SEC: "commandTtlSec",
  NBFLEET_COMMAND_TIMEOUT_SEC: "commandTimeoutSec",
  NBFLEET_REPORT_INTERVAL_SEC: "reportIntervalSec",
  NBFLEET_PING_INTERVAL_SEC: "pingIntervalSec",
  NBFLEET_BOOTSTRAP_TOKEN_TTL_SEC: "bootstrapTokenTtlSec",
  NBFLEET_HISTORY_RETENTION_DAYS: "historyRetentionDays",
  NBFLEET_TERMINAL_IDLE_TIMEOUT_SEC: "terminalIdleTimeoutSec",
  NBFLEET_SESSION_TTL_SEC: "sessionTtlSec",
  NBFLEET_UPGRADE_TIMEOUT_SEC: "upgradeTimeoutSec",
  NBFLEET_CONSOLE_DIR: "consoleDir",
  NBFLEET_PROVIDER: "provider",
  NBFLEET_RECONCILE_INTERVAL_SEC: "reconcileIntervalSec",
  NBFLEET_TLS_CERT: "tlsCert",
  NBFLEET_TLS_KEY: "tlsKey",
  NBFLEET_TLS_CA: "tlsCa",
  NBFLEET_ACME_DOMAIN: "acmeDomain",
  NBFLEET_ACME_DIRECTORY: "acmeDirectory",
  NBFLEET_ACME_EMAIL: "acmeEmail",
  NBFLEET_ACME_CA_FILE: "acmeCaFile",
  NBFLEET_ACME_CHALLENGE: "acmeChallenge",
  NBFLEET_ACME_CHALLENGE_PORT: "acmeChallengePort",
  NBFLEET_CERTIFICATE_MODE: "certificateMode",
  AZURE_SUBSCRIPTION_ID: "azureSubscriptionId",
  NBFLEET_AZURE_LOCATION: "azureLocation",
  NBFLEET_AZURE_RESOURCE_GROUP: "azureResourceGroup",
  NBFLEET_AZURE_ENDPOINT: "azureEndpoint",
  NBFLEET_AZURE_CA_FILE: "azureCaFile",
  NBFLEET_AZURE_VM_SIZE: "azureVmSize",
  NBFLEET_AZURE_IMAGE: "azureImage",
  NBFLEET_AZURE_SSH_PUBLIC_KEY_FILE: "azureSshPublicKeyFile",
  NBFLEET_AZURE_NOTEBOOK_SOURCES: "azureNotebookSources",
  NBFLEET_AZURE_SSH_SOURCES: "azureSshSources",
  NBFLEET_AZURE_OPERATION_TIMEOUT_SEC: "azureOperationTimeoutSec",
  NBFLEET_AZURE_REQUEST_TIMEOUT_SEC: "azureRequestTimeoutSec",
  NBFLEET_LOG_LEVEL: "logLevel",
  NBFLEET_BODY_LIMIT_BYTES: "bodyLimitBytes",
  NBFLEET_REQUEST_TIMEOUT_SEC: "requestTimeoutSec",
  NBFLEET_HEADERS_TIMEOUT_SEC: "headersTimeoutSec",
  NBFLEET_KEEP_ALIVE_TIMEOUT_SEC: "keepAliveTimeoutSec",
  NBFLEET_EVENT_STREAM_MAX_BUFFER_BYTES: "eventStreamMaxBufferBytes",
  NBFLEET_METRICS_REFRESH_SEC: "metricsRefreshSec",
  NBFLEET_METRICS_ACCESS: "metricsAccess",
};

const NUMERIC = new Set<keyof ControllerSettings>([
  "commandTtlSec",
  "commandTimeoutSec",
  "reportIntervalSec",
  "pingIntervalSec",
  "helloTimeoutSec",
  "bootstrapTokenTtlSec",
  "maxMessageBytes",
  "bodyLimitBytes",
  "requestTimeoutSec",
  "headersTimeoutSec",
  "keepAliveTimeoutSec",
  "eventStreamMaxBufferBytes",
  "metricsRefreshSec",
  "stateFlushMs",
  "stateFlushMaxItems",
  "commandSweepMs",
  "historyRetentionDays",
  "terminalIdleTimeoutSec",
  "sessionTtlSec",
  "upgradeTimeoutSec",
  "terminalDetachedTimeoutSec",
  "terminalMaxSessionsPerVm",
  "reconcileIntervalSec",
  "replicaHeartbeatSec",
  "azureMaxConcurrency",
  "azureOperationTimeoutSec",
  "azureRequestTimeoutSec",
  "acmeChallengePort",
]);

const fullValidator = compileValidator(ControllerSettings, "controller settings");
const partialValidator = compileValidator(Type.Partial(ControllerSettings), "controller settings");

export interface LoadOptions {
  /** Values the CLI parsed from flags; undefined entries are ignored. */
  flags?: Partial<ControllerSettings>;
  env?: Record<string, string | undefined>;
  /** A JSON settings file; when absent, `<dataDir>/config.json` is read if it exists. */
  configFile?: string;
  home?: string;
}

export function loadSettings(options: LoadOptions = {}): ControllerSettings {
  const env = options.env ?? process.env;
  const flags = dropUndefined(options.flags ?? {});
  const fromEnv = envSettings(env);
  const defaults = defaultSettings(options.home);
  const dataDir = resolve(flags.dataDir ?? fromEnv.dataDir ?? defaults.dataDir);
  const configFile = options.configFile ?? env.NBFLEET_CONFIG ?? join(dataDir, "config.json");
  const explicitFile = options.configFile !== undefined || Boolean(env.NBFLEET_CONFIG);
  const fromFile = readSettingsFile(configFile, explicitFile);
  const merged = { ...defaults, ...fromFile, ...fromEnv, ...flags, dataDir };
  checkControllerUrls(merged);
  if (merged.acmeDomain && (merged.tlsCert || merged.tlsKey)) {
    throw new NbfError("NBF_CONFIG_INVALID", {
      source: "acmeDomain",
      problems:
        "NBFLEET_ACME_DOMAIN (--acme-domain) and NBFLEET_TLS_CERT/KEY (--tls-cert/--tls-key) both choose the controller's certificate: give one",
    });
  }
  check(fullValidator, merged, "flags, environment and file combined");
  return merged;
}

/** Each bad agent-facing URL named (the schema alone would only quote a pattern). */
function checkControllerUrls({
  controllerUrls: urls,
  tlsCert,
  acmeDomain,
}: Partial<ControllerSettings>): void {
  if (!Array.isArray(urls) || !urls.every((url) => typeof url === "string")) return;
  const problems = controllerUrlListProblems(urls);
  const plain = urls.filter((url) => /^(http|ws):/.test(url));
  // With its own certificate the controller tells guests to verify it: they would refuse these.
  if ((tlsCert || acmeDomain) && plain.length > 0) {
    problems.push(
      `with ${tlsCert ? "tlsCert" : "acmeDomain"}, agents verify the controller and need https:// or wss://, got ${plain.join(", ")}`,
    );
  }
  if (problems.length > 0) {
    throw new NbfError("NBF_CONFIG_INVALID", { source: "controllerUrls", problems: problems.join("; ") });
  }
}

function envSettings(env: Record<string, string | undefined>): Partial<ControllerSettings> {
  const out: Record<string, unknown> = {};
  for (const [name, key] of Object.entries(ENV_VARS)) {
    const raw = env[name];
    if (raw === undefined || raw === "") continue;
    if (key === "controllerUrls") {
      out[key] = splitControllerUrls(raw);
      checkControllerUrls({ controllerUrls: out[key] as string[] });
      continue;
    }
    out[key] = NUMERIC.has(key) && /^-?\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : raw;
  }
  check(partialValidator, out, "environment");
  return out as Partial<ControllerSettings>;
}

function readSettingsFile(path: string, mustExist: boolean): Partial<ControllerSettings> {
  if (!existsSync(path)) {
    if (mustExist)
      throw new NbfError("NBF_CONFIG_INVALID", { source: path, problems: "the file does not exist" });
    return {};
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new NbfError("NBF_CONFIG_INVALID", { source: path, problems: (error as Error).message });
  }
  check(partialValidator, parsed, path);
  return parsed as Partial<ControllerSettings>;
}

function check(
  validator: { is(v: unknown): boolean; problems(v: unknown): string[] },
  value: unknown,
  source: string,
): void {
  // Named as the operator spells them, before the schema's generic message.
  const acme = typeof value === "object" && value !== null ? acmeSettingsProblems(value) : [];
  if (acme.length > 0) throw new NbfError("NBF_CONFIG_INVALID", { source, problems: acme.join("; ") });
  if (!validator.is(value)) {
    const problems = validator.problems(value).map((problem) => withoutSecrets(problem, value));
    throw new NbfError("NBF_CONFIG_INVALID", { source, problems: problems.join("; ") });
  }
}

/** Settings whose values are secrets: an error names the setting, never the value (the journal keeps it). */
const SECRET_SETTINGS = ["adminToken", "databaseUrl"] as const;

/** A problem as the validator wrote it ("…, got <the value as JSON, cut at 80>"), secrets masked. */
function withoutSecrets(problem: string, value: unknown): string {
  if (typeof value !== "object" || value === null) return problem;
  let masked = problem;
  for (const name of SECRET_SETTINGS) {
    const secret = (value as Record<string, unknown>)[name];
    if (typeof secret !== "string" || secret === "") continue;
    masked = masked.replaceAll(JSON.stringify(secret).slice(0, 80), '"[redacted]"');
  }
  return masked;
}

function dropUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** `listen` split for `app.listen`; brackets around IPv6 hosts removed. */
export function parseListen(listen: string): { host: string; port: number } {
  const at = listen.lastIndexOf(":");
  return { host: listen.slice(0, at).replace(/^\[(.*)\]$/, "$1"), port: Number(listen.slice(at + 1)) };
}
