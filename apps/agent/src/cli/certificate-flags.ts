/**
 * `up`'s certificate flags (`--certificate-mode`, `--acme-*`): laid over DIR/agent.json's
 * `certificate.*` and checked like the settings file, with a refusal naming the flag (and the
 * field it sets). A launcher repeats them on every start, so they are settings, not one-offs.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { compileValidator } from "@nbfleet/shared";
import { integerIn, oneOf } from "@nbfleet/shared/cli-parse";
import type { Command } from "commander";
import {
  type CertificateSettings,
  CertificateSettings as CertificateSettingsSchema,
} from "../config/settings.js";
import { AgentError } from "../errors.js";

export interface CertificateFlags {
  certificateMode?: CertificateSettings["mode"];
  acmeHostname?: string;
  acmeDirectory?: string;
  acmeEmail?: string;
  acmeCaFile?: string;
  acmeChallenge?: CertificateSettings["challenge"];
  acmeChallengePort?: number;
}

/** The port a CA validates each challenge on when none is given (RFC 8555 8.3, RFC 8737). */
export const DEFAULT_CHALLENGE_PORT: Record<CertificateSettings["challenge"], number> = {
  "http-01": 80,
  "tls-alpn-01": 443,
};

const FLAG_OF: Record<keyof CertificateSettings, string> = {
  mode: "--certificate-mode",
  hostname: "--acme-hostname",
  directoryUrl: "--acme-directory",
  email: "--acme-email",
  caFile: "--acme-ca-file",
  challenge: "--acme-challenge",
  challengePort: "--acme-challenge-port",
};

/** What the settings accept, for people: the schema's own words are regular expressions. */
const EXPECTED: Partial<Record<keyof CertificateSettings, string>> = {
  hostname: "a DNS name with at least two labels, such as nb1.westeurope.cloudapp.azure.com",
  directoryUrl: "an https:// URL of at most 2048 characters",
  email: "an e-mail address (name@domain)",
};

const validator = compileValidator(CertificateSettingsSchema, "certificate settings");

export function withCertificateFlags(command: Command): Command {
  return command
    .option(
      "--certificate-mode <mode>",
      "self-signed (default) or acme: obtain and renew the notebook's certificate over ACME (certificate.mode)",
      oneOf("--certificate-mode", ["self-signed", "acme"] as const),
    )
    .option(
      "--acme-hostname <name>",
      "the machine's public DNS name the certificate is for (certificate.hostname)",
    )
    .option("--acme-directory <url>", "the ACME directory URL, https:// (certificate.directoryUrl)")
    .option("--acme-email <address>", "the ACME account's contact (certificate.email)")
    .option(
      "--acme-ca-file <file>",
      "a CA certificate (PEM) trusted for the ACME server's own TLS (certificate.caFile)",
    )
    .option(
      "--acme-challenge <type>",
      "http-01 (default) or tls-alpn-01 (certificate.challenge)",
      oneOf("--acme-challenge", ["http-01", "tls-alpn-01"] as const),
    )
    .option(
      "--acme-challenge-port <port>",
      "the port the CA validates on (certificate.challengePort; default 80 for http-01, 443 for tls-alpn-01)",
      integerIn("--acme-challenge-port", 1, 65535),
    );
}

/**
 * The certificate settings the flags make of `stored`, or null when no flag was given. Throws
 * NBF_INVALID_INPUT naming the flag whose value the settings would refuse.
 */
export async function certificateFromFlags(
  flags: CertificateFlags,
  stored: CertificateSettings,
): Promise<CertificateSettings | null> {
  const given: Partial<CertificateSettings> = {
    ...(flags.certificateMode !== undefined ? { mode: flags.certificateMode } : {}),
    ...(flags.acmeHostname !== undefined ? { hostname: flags.acmeHostname } : {}),
    ...(flags.acmeDirectory !== undefined ? { directoryUrl: flags.acmeDirectory } : {}),
    ...(flags.acmeEmail !== undefined ? { email: flags.acmeEmail } : {}),
    ...(flags.acmeCaFile !== undefined ? { caFile: await caFileOf(flags.acmeCaFile) } : {}),
    ...(flags.acmeChallenge !== undefined ? { challenge: flags.acmeChallenge } : {}),
    ...(flags.acmeChallengePort !== undefined ? { challengePort: flags.acmeChallengePort } : {}),
  };
  if (Object.keys(given).length === 0) return null;
  const merged: CertificateSettings = { ...stored, ...given };
  // Another challenge without a port: the port that challenge is validated on, not the old one's.
  if (given.challenge !== undefined && given.challengePort === undefined) {
    merged.challengePort = DEFAULT_CHALLENGE_PORT[given.challenge];
  }
  for (const problem of validator.problems(merged, 1)) {
    const field = problem.slice(0, problem.indexOf(":")) as keyof CertificateSettings;
    const flag = FLAG_OF[field] ?? "a certificate flag";
    const value = JSON.stringify(merged[field]);
    const expected = EXPECTED[field] ? `is not ${EXPECTED[field]}` : `is refused (${problem})`;
    throw new AgentError("NBF_INVALID_INPUT", `${flag} ${value} ${expected} (certificate.${field})`, {
      flag,
      field: `certificate.${field}`,
      value: merged[field],
    });
  }
  if (merged.mode === "acme" && merged.hostname === null) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      "--acme-hostname is needed with --certificate-mode acme: the machine's public DNS name the certificate is for (certificate.hostname)",
      { flag: "--acme-hostname", field: "certificate.hostname" },
    );
  }
  return merged;
}

/** Absolute (the agent reads it at every issuance, from wherever it runs) and a PEM certificate now. */
async function caFileOf(file: string): Promise<string> {
  const absolute = path.resolve(file);
  let text: string;
  try {
    text = await readFile(absolute, "utf8");
  } catch (error) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      `--acme-ca-file: cannot read ${absolute}: ${(error as Error).message}`,
      { flag: "--acme-ca-file", field: "certificate.caFile", file: absolute },
    );
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      `--acme-ca-file: ${absolute} holds no PEM certificate (no BEGIN CERTIFICATE line)`,
      { flag: "--acme-ca-file", field: "certificate.caFile", file: absolute },
    );
  }
  return absolute;
}
