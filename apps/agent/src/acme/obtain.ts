/**
 * Obtains a certificate for the machine's DNS name from an ACME CA through @nbfleet/acme (the
 * account key kept 0600 in the state dir, the challenge answered by the agent itself on the
 * configured port) and installs the issued chain as the notebook's cert.pem/key.pem. Nothing is
 * written until the chain is in hand and checked against its key: any failure leaves the
 * current certificate as it was and throws NBF_ACME_FAILED naming the ACME problem.
 */
import { AcmeError, issueCertificate, stepError } from "@nbfleet/acme";
import type { CertificateSettings } from "../config/settings.js";
import { AgentError } from "../errors.js";
import { type CertificatePaths, installCertificate } from "../tls/ensure.js";
import type { CertificateDetails } from "../tls/inspect.js";
import type { FileOwner } from "../util/atomic-write.js";

export type AcmeSettings = Pick<
  CertificateSettings,
  "directoryUrl" | "email" | "hostname" | "caFile" | "challenge" | "challengePort"
>;

export interface ObtainOptions {
  settings: AcmeSettings;
  paths: CertificatePaths & { acmeAccountKey: string };
  owner?: FileOwner;
  /** The address the challenge responder listens on (default: all of the machine's). */
  challengeHost?: string;
  /** The whole issuance, from the directory to the checked chain. */
  timeoutMs?: number;
}

export interface ObtainResult {
  info: CertificateDetails;
  /** The issuing CA's subject (the leaf's issuer), for the health model. */
  issuer: string;
  directoryUrl: string;
}

export async function obtainCertificate(options: ObtainOptions): Promise<ObtainResult> {
  const { settings } = options;
  const hostname = settings.hostname;
  if (!hostname) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      "certificate.hostname is not set: ACME needs the machine's DNS name",
      { field: "certificate.hostname" },
    );
  }
  try {
    const issued = await issueCertificate({
      hostname,
      directoryUrl: settings.directoryUrl,
      email: settings.email,
      caFile: settings.caFile,
      caFileSetting: "certificate.caFile",
      accountKeyFile: options.paths.acmeAccountKey,
      challenge: settings.challenge,
      answer: {
        port: settings.challengePort,
        ...(options.challengeHost ? { host: options.challengeHost } : {}),
      },
      ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    });
    // The package checked the chain already (key, validity, name); installing checks the pair again.
    const info = await installCertificate(
      options.paths,
      issued.chainPem,
      issued.keyPem,
      options.owner ? { owner: options.owner } : {},
    ).catch((error: unknown) => {
      throw stepError("install", error);
    });
    return { info, issuer: issued.issuer, directoryUrl: issued.directoryUrl };
  } catch (error) {
    throw asAgentError(error);
  }
}

/** The package's errors (and a failed check) under the agent's catalogue, details kept. */
function asAgentError(error: unknown): unknown {
  if (error instanceof AcmeError) return new AgentError(error.code, error.message, error.details);
  if (error instanceof AgentError && error.code === "NBF_CERT_INVALID") {
    return new AgentError(
      "NBF_ACME_FAILED",
      `ACME checking the issued chain failed: ${error.message}; the current certificate was kept`,
      { step: "checking the issued chain" },
    );
  }
  return error;
}
