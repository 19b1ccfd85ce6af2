/**
 * Makes the self-signed certificate a guest serves by default. The key pair is created here,
 * on the guest, so the private key never travels.
 *
 * Shape (accepted by Chromium after the usual self-signed warning and by Python's ssl with the
 * certificate as its cafile): ECDSA P-256 signed with SHA-256, basicConstraints CA:FALSE,
 * keyUsage digitalSignature, extendedKeyUsage serverAuth, SANs for every requested name plus
 * localhost, 127.0.0.1 and ::1. The subject carries O=nbfleet: that marks the certificate as
 * one the agent made and may replace, unlike a certificate an operator installed.
 */
import { type CertificatePair, selfSignedPair } from "@nbfleet/acme/self-signed";
import { AgentError } from "../errors.js";
import { subjectNames } from "./subject-names.js";

export const MANAGED_ORGANIZATION = "nbfleet";
const MAX_DAYS = 3650;
/** Tolerates a browser whose clock is a little behind the guest's. */
const BACKDATE_MS = 5 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;
const CN_MAX = 64;

export interface GenerateOptions {
  hostnames?: string[];
  ips?: string[];
  days?: number;
  now?: Date;
}

export type { CertificatePair };

export async function generateSelfSigned(options: GenerateOptions = {}): Promise<CertificatePair> {
  const { days = 365, now = new Date() } = options;
  if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      `certificate lifetime must be 1..${MAX_DAYS} whole days, got ${days}`,
      {
        days,
      },
    );
  }
  const names = subjectNames(options);
  const commonName = names.hostnames.find((h) => h.length <= CN_MAX) ?? "localhost";
  const start = Math.floor(now.getTime() / 1000) * 1000;
  return selfSignedPair({
    commonName,
    organization: MANAGED_ORGANIZATION,
    dnsNames: names.hostnames,
    ips: names.ips,
    notBefore: new Date(start - BACKDATE_MS),
    notAfter: new Date(start + days * DAY_MS),
  });
}
