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
import { createPrivateKey, randomBytes, webcrypto } from "node:crypto";
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

export interface CertificatePair {
  certPem: string;
  /** PKCS#8 PEM. */
  keyPem: string;
}

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
  const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = (await webcrypto.subtle.generateKey(algorithm, true, [
    "sign",
    "verify",
  ])) as webcrypto.CryptoKeyPair;
  const start = Math.floor(now.getTime() / 1000) * 1000;

  // Loaded on first use: the library is large and only certificate making needs it.
  const { x509 } = await import("./x509-library.js");
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ CN: [commonName] }, { O: [MANAGED_ORGANIZATION] }],
    notBefore: new Date(start - BACKDATE_MS),
    notAfter: new Date(start + days * DAY_MS),
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension([
        ...names.hostnames.map((value) => ({ type: "dns" as const, value })),
        ...names.ips.map((value) => ({ type: "ip" as const, value })),
      ]),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });

  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey("pkcs8", keys.privateKey));
  const keyPem = createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" })
    .export({ format: "pem", type: "pkcs8" })
    .toString();
  return { certPem: cert.toString("pem") + "\n", keyPem };
}

/** 128 random bits, first bit clear so the DER integer stays positive (RFC 5280 4.1.2.2). */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString("hex");
}
