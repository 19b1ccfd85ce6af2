/**
 * Whether a served chain (cert.pem: the leaf, then its intermediates) holds together right now:
 * every certificate within its validity and signed by the one after it. The last one's own
 * issuer (a root) is the client's to trust, so it is not looked for here.
 */
import { X509Certificate } from "node:crypto";

export interface ChainVerdict {
  valid: boolean;
  /** Which link fails and why; null when the chain is valid. */
  problem: string | null;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** The certificates of a PEM bundle in their order; a block that does not parse throws. */
export function splitChain(pem: string): X509Certificate[] {
  return (pem.match(PEM_BLOCK) ?? []).map((block) => new X509Certificate(block));
}

export function checkChain(chain: X509Certificate[], now: Date = new Date()): ChainVerdict {
  if (chain.length === 0) return { valid: false, problem: "the chain holds no certificate" };
  for (const [index, cert] of chain.entries()) {
    const which = describe(index, cert);
    if (now.getTime() < Date.parse(cert.validFrom)) {
      return invalid(`${which} is not valid before ${new Date(cert.validFrom).toISOString()}`);
    }
    if (now.getTime() > Date.parse(cert.validTo)) {
      return invalid(`${which} expired on ${new Date(cert.validTo).toISOString()}`);
    }
    const next = chain[index + 1];
    if (!next) break;
    const nextWhich = describe(index + 1, next);
    // checkIssued compares names (and key identifiers); only the signature proves it.
    if (!cert.checkIssued(next)) {
      return invalid(`${which} names ${quote(cert.issuer)} as its issuer, not ${nextWhich}`);
    }
    if (!verifies(cert, next)) return invalid(`${which} is not signed by ${nextWhich}`);
  }
  return { valid: true, problem: null };
}

function verifies(cert: X509Certificate, issuer: X509Certificate): boolean {
  try {
    return cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

function describe(index: number, cert: X509Certificate): string {
  const role = index === 0 ? "the certificate" : `chain certificate ${index + 1}`;
  return `${role} (${quote(cert.subject)})`;
}

/** A distinguished name on one line, as people read it. */
function quote(name: string): string {
  return name.split("\n").join(", ");
}

function invalid(problem: string): ChainVerdict {
  return { valid: false, problem };
}
