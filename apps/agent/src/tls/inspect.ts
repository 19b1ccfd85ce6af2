/**
 * Reads certificates and key pairs: what a certificate says about itself (fingerprint,
 * validity, names, who signed it) and whether a certificate and key can be served together.
 * Parsing and signature checks are node:crypto's; only the SAN list comes from @peculiar/x509
 * because node gives it as one display string.
 */
import { type KeyObject, X509Certificate, createPrivateKey } from "node:crypto";
import type { CertificateInfo } from "@nbfleet/shared";
import { AgentError } from "../errors.js";
import { formatFingerprint } from "./fingerprint.js";
import { MANAGED_ORGANIZATION } from "./generate.js";
import { canonicalIp } from "./subject-names.js";

const DAY_MS = 24 * 60 * 60 * 1000;

export interface CertificateDetails extends CertificateInfo {
  /** Whole days until notAfter; negative once expired. */
  daysLeft: number;
  /** Self-signed by the agent (O=nbfleet): the agent may renew or replace it. */
  managed: boolean;
}

/** Names the files in error messages; defaults suit PEM text that came from elsewhere. */
export interface PairLabels {
  cert: string;
  key: string;
}

const DEFAULT_LABELS: PairLabels = { cert: "the certificate", key: "the private key" };

export function parseCertificate(certPem: string, label = DEFAULT_LABELS.cert): X509Certificate {
  if (!certPem.includes("-----BEGIN CERTIFICATE-----")) {
    throw new AgentError(
      "NBF_CERT_INVALID",
      `${label} is not a PEM certificate (no BEGIN CERTIFICATE line)`,
      {
        file: label,
      },
    );
  }
  try {
    return new X509Certificate(certPem);
  } catch (error) {
    throw new AgentError(
      "NBF_CERT_INVALID",
      `${label} cannot be parsed as an X.509 certificate: ${reason(error)}`,
      {
        file: label,
      },
    );
  }
}

export function parsePrivateKey(keyPem: string, label = DEFAULT_LABELS.key): KeyObject {
  try {
    return createPrivateKey(keyPem);
  } catch (error) {
    throw new AgentError(
      "NBF_CERT_INVALID",
      `${label} cannot be parsed as a PEM private key: ${reason(error)}`,
      {
        file: label,
      },
    );
  }
}

export function inspectCertificate(
  certPem: string,
  now: Date = new Date(),
  label?: string,
): CertificateDetails {
  return describeCertificate(parseCertificate(certPem, label), now);
}

/**
 * Checks that a certificate and key can be served together right now and returns the
 * certificate's details. Throws NBF_CERT_INVALID naming the file and the reason.
 */
export function checkPair(
  certPem: string,
  keyPem: string,
  now: Date = new Date(),
  labels: PairLabels = DEFAULT_LABELS,
): CertificateDetails {
  const cert = parseCertificate(certPem, labels.cert);
  const key = parsePrivateKey(keyPem, labels.key);
  const details = describeCertificate(cert, now);
  if (!keyMatches(cert, key)) {
    throw new AgentError(
      "NBF_CERT_INVALID",
      `${labels.key} does not belong to ${labels.cert} (certificate ${details.fingerprintSha256}); provide the key the certificate was issued for`,
      { file: labels.key, fingerprintSha256: details.fingerprintSha256 },
    );
  }
  if (now.getTime() > Date.parse(details.notAfter)) {
    throw new AgentError("NBF_CERT_INVALID", `${labels.cert} expired on ${details.notAfter}`, {
      file: labels.cert,
      notAfter: details.notAfter,
    });
  }
  if (now.getTime() < Date.parse(details.notBefore)) {
    throw new AgentError(
      "NBF_CERT_INVALID",
      `${labels.cert} is not valid before ${details.notBefore} (check this machine's clock)`,
      { file: labels.cert, notBefore: details.notBefore },
    );
  }
  return details;
}

export function keyMatches(cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.checkPrivateKey(key);
  } catch {
    return false;
  }
}

/** Self-signed by the agent itself, so the agent may replace it (see generate.ts). */
export function isManaged(cert: X509Certificate): boolean {
  return isSelfSigned(cert) && cert.subject.split("\n").includes(`O=${MANAGED_ORGANIZATION}`);
}

function isSelfSigned(cert: X509Certificate): boolean {
  return cert.subject === cert.issuer && cert.verify(cert.publicKey);
}

export function describeCertificate(cert: X509Certificate, now: Date = new Date()): CertificateDetails {
  const notBefore = new Date(cert.validFrom);
  const notAfter = new Date(cert.validTo);
  return {
    fingerprintSha256: formatFingerprint(cert.fingerprint256),
    notBefore: notBefore.toISOString(),
    notAfter: notAfter.toISOString(),
    subjectAltNames: subjectAltNames(cert),
    selfSigned: isSelfSigned(cert),
    daysLeft: Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS),
    managed: isManaged(cert),
  };
}

/**
 * SANs from node's own rendering ("DNS:a, IP Address:1.2.3.4"), whose values are JSON-quoted
 * when they hold separators; this keeps the X.509 library off the hot path (it is only needed
 * to build certificates).
 */
function subjectAltNames(cert: X509Certificate): string[] {
  const names: string[] = [];
  const entry = /(DNS|IP Address|URI|email|othername|DirName):("(?:[^"\\]|\\.)*"|[^,]*)(?:, |$)/g;
  for (const match of (cert.subjectAltName ?? "").matchAll(entry)) {
    const [, type, raw = ""] = match;
    const value = raw.startsWith('"') ? (JSON.parse(raw) as string) : raw;
    if (type === "DNS") names.push(`DNS:${value.toLowerCase()}`);
    else if (type === "IP Address") names.push(`IP:${canonicalIp(value) ?? value}`);
    else names.push(`${type}:${value}`);
  }
  return names;
}

function reason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
