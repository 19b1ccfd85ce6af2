/**
 * The controller's own TLS: certificate and key files (`--tls-cert`/`--tls-key`), checked to
 * parse and to belong together, and what guests are told to trust so their agents verify this
 * controller — its CA when one is given (`--tls-ca`), else the SHA-256 fingerprint of the
 * certificate, which agents pin. With `acmeDomain` the certificate comes from an ACME CA and
 * changes at every renewal: guests trust the CA (`--tls-ca`, else the system's roots), never a pin.
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import { type CertificatePin, certificateSha256, publicKeySha256 } from "@nbfleet/shared/certificate-pin";
import { configSource } from "../config/config-source.js";
import type { ControllerSettings } from "../config/settings.js";
import { NbfError } from "../errors.js";

const { invalid, read } = configSource("TLS settings");

export interface ControllerTls {
  certPem: string;
  keyPem: string;
  caPem: string | null;
  /** Uppercase colon hex, as agents take it (`--controller-fingerprint`). */
  fingerprintSha256: string;
  /** SHA-256 of the certificate's public key: a renewal with the same key keeps it (certificate-pin). */
  keySha256: string;
  notAfter: string;
}

declare module "fastify" {
  interface FastifyInstance {
    /** The certificate files served (`tlsCert`/`tlsKey`); null with `acmeDomain` or plain HTTP. */
    servedTls: ControllerTls | null;
  }
}

const DAY_MS = 86_400_000;

/** Below this many days left, a start logs a warning naming the renewal. */
export const RENEW_WARNING_DAYS = 30;

/** /healthz's view of the served certificate files: until when, and what guests check. */
export function fileCertificateStatus(tls: ControllerTls, now = Date.now()) {
  return {
    source: "files" as const,
    notAfter: tls.notAfter,
    /** Negative once expired. */
    daysLeft: Math.floor((Date.parse(tls.notAfter) - now) / DAY_MS),
    fingerprintSha256: tls.fingerprintSha256,
    keySha256: tls.keySha256,
    guestsTrust: tls.caPem ? ("ca" as const) : ("pin" as const),
  };
}

/** What a pin of these files names: the certificate and its key. */
export function pinOf(tls: ControllerTls): CertificatePin {
  return { certificateSha256: tls.fingerprintSha256, keySha256: tls.keySha256 };
}

export interface GuestTrust {
  caPem?: string;
  fingerprint?: string;
  /** With `fingerprint`: the certificate it pins, the one trust anchor of the bootstrap's download. */
  certPem?: string;
}

type TlsSettings = Pick<ControllerSettings, "tlsCert" | "tlsKey" | "tlsCa">;

export function readTlsFiles(settings: TlsSettings): ControllerTls | null {
  if (!settings.tlsCert && !settings.tlsKey) return null;
  if (!settings.tlsCert || !settings.tlsKey) {
    throw invalid("give both --tls-cert and --tls-key (NBFLEET_TLS_CERT, NBFLEET_TLS_KEY), or neither");
  }
  const certPem = read(settings.tlsCert, "--tls-cert");
  const keyPem = read(settings.tlsKey, "--tls-key");
  const caPem = settings.tlsCa ? read(settings.tlsCa, "--tls-ca") : null;
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (error) {
    throw invalid(`${settings.tlsCert} is not a PEM certificate: ${(error as Error).message}`);
  }
  try {
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) {
      throw invalid(
        `the key in ${settings.tlsKey} does not belong to the certificate in ${settings.tlsCert}`,
      );
    }
  } catch (error) {
    if (error instanceof NbfError) throw error;
    throw invalid(`${settings.tlsKey} is not a PEM private key: ${(error as Error).message}`);
  }
  if (caPem !== null) {
    try {
      new X509Certificate(caPem);
    } catch (error) {
      throw invalid(`${settings.tlsCa} is not a PEM certificate: ${(error as Error).message}`);
    }
  }
  return {
    certPem,
    keyPem,
    caPem,
    fingerprintSha256: certificateSha256(cert),
    keySha256: publicKeySha256(cert),
    notAfter: new Date(cert.validTo).toISOString(),
  };
}

/** What a guest's bootstrap carries so its agent verifies this controller; undefined without TLS. */
export function guestTrust(tls: ControllerTls | null): GuestTrust | undefined {
  if (!tls) return undefined;
  return tls.caPem ? { caPem: tls.caPem } : { fingerprint: tls.fingerprintSha256, certPem: tls.certPem };
}

/** What guests trust for this controller, whichever way it gets its certificate. */
export function controllerGuestTrust(
  settings: TlsSettings & Pick<ControllerSettings, "acmeDomain">,
): GuestTrust | undefined {
  if (!settings.acmeDomain) return guestTrust(readTlsFiles(settings));
  if (!settings.tlsCa) return undefined;
  const caPem = read(settings.tlsCa, "--tls-ca");
  try {
    new X509Certificate(caPem);
  } catch (error) {
    throw invalid(`${settings.tlsCa} is not a PEM certificate: ${(error as Error).message}`);
  }
  return { caPem };
}
