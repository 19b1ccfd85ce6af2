/**
 * The settings a guest bootstrap carries, as TypeBox schemas: one place that says what each
 * value may be, checked before anything is rendered (shared's `ValidationError` names the field).
 */
import {
  ACME_DIRECTORY_URL_PATTERN,
  ACME_EMAIL_PATTERN,
  ControllerUrlListSchema,
  DNS_NAME_PATTERN,
  ValidationError,
  compileValidator,
  controllerUrlListProblems,
} from "@nbfleet/shared";
import { ARTIFACT_VERSION_PATTERN } from "@nbfleet/shared/artifact-signature";
import { type Static, Type } from "@sinclair/typebox";

const HttpUrl = Type.String({ pattern: "^https?://[^\\s]+$", maxLength: 2048 });
const Sha256Hex = Type.String({ pattern: "^[0-9a-f]{64}$" });
// Visible ASCII only: the token is also written to files and sent in HTTP headers by the agent.
const BootstrapToken = Type.String({ pattern: "^[\\x21-\\x7e]+$", minLength: 8, maxLength: 1024 });
const Port = Type.Integer({ minimum: 1, maximum: 65535 });
const BindIp = Type.String({ pattern: "^[0-9A-Fa-f:.]+$", maxLength: 64 });
const UserName = Type.String({ pattern: "^[a-z_][a-z0-9_-]*\\$?$", maxLength: 32 });
const Hostname = Type.String({ pattern: "^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$", maxLength: 253 });
const CaPem = Type.String({ pattern: "-----BEGIN CERTIFICATE-----", maxLength: 32768 });
// A ready Jupyter hash (the agent checks it fully); the plaintext never reaches a guest.
const PasswordHash = Type.String({
  pattern: "^(argon2:\\$argon2(id|i)\\$|sha1:)[\\x21-\\x7e]+$",
  maxLength: 512,
});
const PublicUrl = Type.String({
  pattern: "^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?/[^\\s'\"]*$",
  maxLength: 2048,
});
const Fingerprint = Type.String({ pattern: "^([0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2}$|^[0-9A-Fa-f]{64}$" });

/**
 * The notebook's certificate from an ACME CA (absent = the agent's own self-signed one): given
 * to the agent as `up --certificate-mode acme --acme-*`. Kept to characters no quoting has to
 * carry: they end up on a command line (a launcher script, a Windows task).
 */
const GuestCertificate = Type.Object(
  {
    mode: Type.Literal("acme"),
    /** The machine's public DNS name the certificate is for. */
    hostname: Type.String({ pattern: DNS_NAME_PATTERN, maxLength: 253 }),
    directoryUrl: Type.String({
      pattern: ACME_DIRECTORY_URL_PATTERN,
      maxLength: 2048,
    }),
    email: Type.Union([Type.String({ pattern: ACME_EMAIL_PATTERN, maxLength: 254 }), Type.Null()]),
    /** A CA (PEM) trusted for the ACME server's own TLS: written 0644 as `<install>/acme-ca.pem`. */
    caPem: Type.Optional(CaPem),
    challenge: Type.Union([Type.Literal("http-01"), Type.Literal("tls-alpn-01")]),
    /** Where the agent answers the challenge: 80 for http-01, 443 for tls-alpn-01 on a public machine. */
    challengePort: Port,
  },
  { additionalProperties: false },
);
export type GuestCertificate = Static<typeof GuestCertificate>;

/** What both the Linux and the Windows bootstrap need to install and start the agent. */
const GuestFields = {
  /** The controller the bootstrap comes from (and the agent dials when `controllerUrls` is absent). */
  controllerUrl: HttpUrl,
  /**
   * The controllers the agent dials, tried in turn (`--controller` once each), e.g. a load
   * balancer and the replicas behind it. Absent = `[controllerUrl]`. The same trust for all.
   */
  controllerUrls: Type.Optional(ControllerUrlListSchema),
  artifactUrl: HttpUrl,
  artifactSha256: Sha256Hex,
  /** The artifact's version (`install/versions/<version>/`); absent = named by its sha256. */
  artifactVersion: Type.Optional(Type.String({ pattern: ARTIFACT_VERSION_PATTERN, maxLength: 64 })),
  /**
   * The controller's release public key (Ed25519, SPKI PEM): written 0644 to the install dir and
   * given to the agent (`--release-key-file`), which refuses an upgrade artifact it did not sign.
   */
  releasePublicKeyPem: Type.Optional(
    Type.String({
      pattern: "^-----BEGIN PUBLIC KEY-----\\n[A-Za-z0-9+/=\\n]+-----END PUBLIC KEY-----\\n?$",
      maxLength: 1024,
    }),
  ),
  bootstrapToken: BootstrapToken,
  notebookPort: Port,
  bindIp: BindIp,
  allowRoot: Type.Optional(Type.Boolean()),
  controllerCaPem: Type.Optional(CaPem),
  controllerFingerprint: Type.Optional(Fingerprint),
  /**
   * The controller's own certificate (PEM), carried with `controllerFingerprint`: the Linux
   * bootstrap's Node.js download takes it as the one trust anchor and checks the pin too.
   */
  controllerCertPem: Type.Optional(CaPem),
  /** systemd/Windows: the public port redirected to `notebookPort` (443 on Azure). */
  publicPort: Type.Optional(Port),
  /**
   * The notebook password as a ready Jupyter hash, handed to the agent in a 0600 file
   * (`--password-hash-file`) and applied at its first start only; else the controller sets it later.
   */
  passwordHash: Type.Optional(PasswordHash),
  /** Extra DNS names for the notebook's certificate (`--hostname`). */
  hostnames: Type.Optional(Type.Array(Hostname, { maxItems: 16 })),
  /** Where people reach the notebook, e.g. `https://<fqdn>/` through `publicPort` (`--public-url`). */
  publicUrl: Type.Optional(PublicUrl),
  certificate: Type.Optional(GuestCertificate),
  /** Replaces the agent's arguments (after the bundle path) — for diagnostics and tests. */
  agentArgs: Type.Optional(Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 64 })),
};

const AbsolutePosixPath = Type.String({ pattern: "^/", maxLength: 1024 });

export const LinuxBootstrapOptionsSchema = Type.Object(
  {
    ...GuestFields,
    /** `sandbox`: start the agent detached (local provider); `systemd`: install it as a service (cloud). */
    mode: Type.Union([Type.Literal("sandbox"), Type.Literal("systemd")]),
    /** The agent's data directory (`--data-dir`). */
    dataDir: AbsolutePosixPath,
    /** Where the artifact is unpacked and the launcher, token and pidfile live. */
    installDir: AbsolutePosixPath,
    runAs: Type.Optional(UserName),
    /** The Node.js to run the agent with: a command on PATH or an absolute path (default `node`). */
    node: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    /** Install Node.js when it is missing or older than 20 (default: only in systemd mode). */
    installNode: Type.Optional(Type.Boolean()),
    /**
     * Where official Node.js builds come from when the distribution's is older than 20 (Ubuntu
     * 24.04 ships 18): a nodejs.org-style directory with SHASUMS256.txt. `null` = distro only.
     * Default `https://nodejs.org/dist/latest-v20.x`.
     */
    nodeDistUrl: Type.Optional(Type.Union([HttpUrl, Type.Null()])),
    /** systemd mode: where unit files go (default /etc/systemd/system). */
    systemdUnitDir: Type.Optional(AbsolutePosixPath),
  },
  { additionalProperties: false },
);
export type LinuxBootstrapOptions = Static<typeof LinuxBootstrapOptionsSchema>;

const WindowsPath = Type.String({ pattern: '^[A-Za-z]:\\\\[^\\x00-\\x1f"*?<>|]*$', maxLength: 240 });

export const WindowsBootstrapOptionsSchema = Type.Object(
  {
    ...GuestFields,
    /** Default `C:\ProgramData\nbfleet\agent`. */
    dataDir: Type.Optional(WindowsPath),
    /** Default `C:\Program Files\nbfleet`. */
    installDir: Type.Optional(WindowsPath),
    /** Python installed when none is found (python.org's Windows installer). Default 3.12.10. */
    pythonVersion: Type.Optional(Type.String({ pattern: "^3\\.\\d+\\.\\d+$" })),
    /** Official Node.js builds (SHASUMS256.txt + MSI). Default `https://nodejs.org/dist/latest-v20.x`. */
    nodeDistUrl: Type.Optional(HttpUrl),
  },
  { additionalProperties: false },
);
export type WindowsBootstrapOptions = Static<typeof WindowsBootstrapOptionsSchema>;

const linuxValidator = compileValidator(LinuxBootstrapOptionsSchema, "Linux bootstrap settings");
const windowsValidator = compileValidator(WindowsBootstrapOptionsSchema, "Windows bootstrap settings");

// systemd unit lines have their own quoting (`%` specifiers, `$` expansion, spaces): paths
// written there are kept to characters that need none.
const UNIT_SAFE_PATH = /^\/[A-Za-z0-9._/+-]*$/;

export function checkLinuxOptions(value: unknown): LinuxBootstrapOptions {
  const options = linuxValidator.check(value);
  const problems = commonProblems(options);
  if (options.runAs && options.allowRoot) problems.push("runAs and allowRoot: give at most one");
  if ((options.controllerFingerprint === undefined) !== (options.controllerCertPem === undefined)) {
    problems.push(
      "controllerFingerprint and controllerCertPem: give both (the pin and the certificate it pins) or neither",
    );
  }
  if (options.mode === "sandbox" && options.publicPort !== undefined) {
    problems.push("publicPort: only systemd mode redirects a public port");
  }
  if (options.mode === "systemd") {
    for (const field of ["dataDir", "installDir", "systemdUnitDir"] as const) {
      const value = options[field];
      if (value !== undefined && !UNIT_SAFE_PATH.test(value)) {
        problems.push(
          `${field}: in systemd mode only letters, digits and . _ / + - are allowed, got ${JSON.stringify(value)}`,
        );
      }
    }
  }
  if (problems.length > 0) throw new ValidationError("Linux bootstrap settings", problems);
  return options;
}

export function checkWindowsOptions(value: unknown): WindowsBootstrapOptions {
  const options = windowsValidator.check(value);
  const problems = commonProblems(options);
  if (problems.length > 0) throw new ValidationError("Windows bootstrap settings", problems);
  return options;
}

function commonProblems(options: {
  controllerUrls?: string[];
  controllerCaPem?: string;
  controllerFingerprint?: string;
  certificate?: GuestCertificate;
  notebookPort: number;
  publicPort?: number;
}): string[] {
  const problems =
    options.controllerCaPem !== undefined && options.controllerFingerprint !== undefined
      ? ["controllerCaPem and controllerFingerprint: give at most one"]
      : [];
  // The agent answers the CA on that port itself: one the notebook holds, or one redirected to
  // the notebook, never reaches it.
  const challengePort = options.certificate?.challengePort;
  if (challengePort !== undefined && challengePort === options.notebookPort) {
    problems.push(`certificate.challengePort: ${challengePort} is the notebook's own port (notebookPort)`);
  } else if (challengePort !== undefined && challengePort === options.publicPort) {
    problems.push(
      `certificate.challengePort: ${challengePort} is redirected to the notebook (publicPort); answer http-01 on port 80 instead`,
    );
  }
  if (options.controllerUrls) {
    problems.push(...controllerUrlListProblems(options.controllerUrls).map((p) => `controllerUrls: ${p}`));
    const plain = options.controllerUrls.filter((url) => /^(http|ws):/.test(url));
    if (plain.length > 0 && (options.controllerCaPem || options.controllerFingerprint)) {
      problems.push(
        `controllerUrls: a controller CA or fingerprint needs https:// or wss:// URLs, got ${plain.join(", ")}`,
      );
    }
  }
  return problems;
}

/** The URLs the agent dials, in order. */
export function agentControllerUrls(options: { controllerUrl: string; controllerUrls?: string[] }): string[] {
  return options.controllerUrls ?? [options.controllerUrl];
}

/** What a guest is told to trust about its controller: its CA, or its certificate and that pin. */
export interface ControllerTrust {
  caPem?: string;
  fingerprint?: string;
  certPem?: string;
}

/** The bootstrap settings that carry `trust` (none without one: the system's trust store). */
export function trustSettings(
  trust: ControllerTrust | undefined,
): Pick<LinuxBootstrapOptions, "controllerCaPem" | "controllerFingerprint" | "controllerCertPem"> {
  return {
    ...(trust?.caPem ? { controllerCaPem: trust.caPem } : {}),
    ...(trust?.fingerprint ? { controllerFingerprint: trust.fingerprint } : {}),
    ...(trust?.certPem ? { controllerCertPem: trust.certPem } : {}),
  };
}
