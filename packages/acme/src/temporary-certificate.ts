/**
 * A self-signed certificate for a name, served only until the CA's chain arrives (a server that
 * must listen before it can answer a TLS-ALPN-01 challenge on its own port). ECDSA P-256,
 * serverAuth, the name as its only SAN, and O=nbfleet temporary so it is told apart from an
 * issued one.
 */
import { type CertificatePair, selfSignedPair } from "./self-signed.js";

export const TEMPORARY_ORGANIZATION = "nbfleet temporary";
const BACKDATE_MS = 5 * 60 * 1000;

export function temporaryCertificate(hostname: string, days = 7, now = new Date()): Promise<CertificatePair> {
  return selfSignedPair({
    commonName: hostname.slice(0, 64),
    organization: TEMPORARY_ORGANIZATION,
    dnsNames: [hostname],
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + days * 86_400_000),
  });
}
