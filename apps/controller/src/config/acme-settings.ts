/**
 * The ACME settings new machines get their notebook certificates with (NBFLEET_ACME_*,
 * NBFLEET_CERTIFICATE_MODE): checked with messages naming the variable, and the CA file read
 * once at start, since its content travels to every guest in the bootstrap.
 */
import { X509Certificate } from "node:crypto";
import { ACME_DIRECTORY_URL_PATTERN, ACME_EMAIL_PATTERN } from "@nbfleet/shared";
import { configSource } from "./config-source.js";
import type { ControllerSettings } from "./settings.js";

type AcmeKey =
  | "acmeDirectory"
  | "acmeEmail"
  | "acmeCaFile"
  | "acmeChallenge"
  | "acmeChallengePort"
  | "certificateMode";

/** How an operator spells each setting (environment, flag), for messages. */
const SPELLED: Record<AcmeKey, string> = {
  acmeDirectory: "NBFLEET_ACME_DIRECTORY (--acme-directory)",
  acmeEmail: "NBFLEET_ACME_EMAIL (--acme-email)",
  acmeCaFile: "NBFLEET_ACME_CA_FILE (--acme-ca-file)",
  acmeChallenge: "NBFLEET_ACME_CHALLENGE (--acme-challenge)",
  acmeChallengePort: "NBFLEET_ACME_CHALLENGE_PORT (--acme-challenge-port)",
  certificateMode: "NBFLEET_CERTIFICATE_MODE (--certificate-mode)",
};

/** The CA bundle travels in every bootstrap (cloud-init's user-data is at most 64 KiB on Azure). */
const CA_MAX_BYTES = 32 * 1024;
// As strict as the bootstrap's options: a value refused there is refused here, at start.
const DIRECTORY_URL = new RegExp(ACME_DIRECTORY_URL_PATTERN);
const EMAIL = new RegExp(ACME_EMAIL_PATTERN);

export const DEFAULT_CHALLENGE_PORT = { "http-01": 80, "tls-alpn-01": 443 } as const;

export interface GuestAcmeSettings {
  directoryUrl: string;
  email: string | null;
  /** NBFLEET_ACME_CA_FILE's content (PEM certificates only); null = the system's trust. */
  caPem: string | null;
  challenge: "http-01" | "tls-alpn-01";
  challengePort: number;
  /** What a VM gets when its request names no certificate. */
  defaultMode: "self-signed" | "acme";
}

/** Problems with the ACME settings, each naming its variable (empty: fine). Files are not read here. */
export function acmeSettingsProblems(settings: Partial<Record<AcmeKey, unknown>>): string[] {
  const problems: string[] = [];
  const bad = (key: AcmeKey, expected: string) =>
    problems.push(`${SPELLED[key]} must be ${expected}, got ${JSON.stringify(settings[key])}`);
  const { acmeDirectory, acmeEmail, acmeCaFile, acmeChallenge, acmeChallengePort, certificateMode } =
    settings;
  if (acmeDirectory !== undefined && !isDirectoryUrl(acmeDirectory))
    bad("acmeDirectory", "an https:// URL (an ACME directory) without query, fragment or credentials");
  if (
    acmeEmail !== undefined &&
    acmeEmail !== null &&
    !(typeof acmeEmail === "string" && acmeEmail.length <= 254 && EMAIL.test(acmeEmail))
  )
    bad("acmeEmail", "an email address");
  if (acmeCaFile !== undefined && acmeCaFile !== null && !(typeof acmeCaFile === "string" && acmeCaFile))
    bad("acmeCaFile", "a file path");
  if (acmeChallenge !== undefined && acmeChallenge !== "http-01" && acmeChallenge !== "tls-alpn-01")
    bad("acmeChallenge", "http-01 or tls-alpn-01");
  if (
    acmeChallengePort !== undefined &&
    acmeChallengePort !== null &&
    !(
      Number.isInteger(acmeChallengePort) &&
      (acmeChallengePort as number) >= 1 &&
      (acmeChallengePort as number) <= 65_535
    )
  )
    bad("acmeChallengePort", "a TCP port (1-65535)");
  if (certificateMode !== undefined && certificateMode !== "self-signed" && certificateMode !== "acme")
    bad("certificateMode", "self-signed or acme");
  return problems;
}

/** The settings guests get, the CA file read and checked now; NBF_CONFIG_INVALID names what is wrong. */
export function readAcmeSettings(settings: Pick<ControllerSettings, AcmeKey>): GuestAcmeSettings {
  const { invalid, read } = configSource("ACME settings");
  const problems = acmeSettingsProblems(settings);
  if (problems.length > 0) throw invalid(problems.join("; "));
  const caPem = settings.acmeCaFile ? read(settings.acmeCaFile, SPELLED.acmeCaFile) : null;
  if (caPem !== null) {
    const problem = caBundleProblem(caPem);
    if (problem) throw invalid(`${SPELLED.acmeCaFile} ${settings.acmeCaFile} ${problem}`);
  }
  return {
    directoryUrl: settings.acmeDirectory,
    email: settings.acmeEmail,
    caPem,
    challenge: settings.acmeChallenge,
    challengePort: settings.acmeChallengePort ?? DEFAULT_CHALLENGE_PORT[settings.acmeChallenge],
    defaultMode: settings.certificateMode,
  };
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----[\s\S]*?-----END \1-----/g;

/** Why `pem` is not a bundle of CA certificates fit to send to guests (null = it is). */
function caBundleProblem(pem: string): string | null {
  if (Buffer.byteLength(pem) > CA_MAX_BYTES)
    return `is ${Buffer.byteLength(pem)} bytes; at most ${CA_MAX_BYTES} travel in a bootstrap`;
  const blocks = [...pem.matchAll(PEM_BLOCK)];
  if (blocks.length === 0) return "is not PEM: it holds no -----BEGIN CERTIFICATE----- block";
  const others = blocks.filter((block) => block[1] !== "CERTIFICATE").map((block) => block[1]);
  // A key in here would go to every guest.
  if (others.length > 0)
    return `holds ${others.join(", ")} beside certificates; it must hold certificates only`;
  for (const [index, block] of blocks.entries()) {
    try {
      new X509Certificate(block[0]);
    } catch (error) {
      return `certificate ${index + 1} does not parse: ${(error as Error).message}`;
    }
  }
  return null;
}

function isDirectoryUrl(value: unknown): boolean {
  if (typeof value !== "string" || value.length > 2048 || !DIRECTORY_URL.test(value)) return false;
  try {
    return new URL(value).hostname !== "";
  } catch {
    return false;
  }
}
