/**
 * The issued chain checked before a caller writes anything: its leaf parses, belongs to the key
 * made for it, is valid now and names the host that was asked for. A CA that hands back
 * something else (another name, another key) is refused here.
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import { AcmeError } from "./error.js";
import { stepError } from "./problem.js";

const STEP = "checking the issued chain";

export interface CheckedChain {
  leaf: X509Certificate;
  /** `DNS:name` entries of the leaf, as X509Certificate spells them. */
  subjectAltNames: string[];
}

export function checkIssuedChain(chainPem: string, keyPem: string, hostname: string, now = new Date()) {
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(chainPem);
  } catch (error) {
    throw stepError(
      STEP,
      new Error(`the issued chain is not a PEM certificate (${(error as Error).message})`),
    );
  }
  let matches = false;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(keyPem));
  } catch {
    matches = false;
  }
  if (!matches) throw stepError(STEP, new Error("the key made for it does not belong to the issued chain"));
  if (now.getTime() > Date.parse(leaf.validTo)) {
    throw stepError(STEP, new Error(`the issued chain expired on ${new Date(leaf.validTo).toISOString()}`));
  }
  if (now.getTime() < Date.parse(leaf.validFrom)) {
    throw stepError(
      STEP,
      new Error(
        `the issued chain is not valid before ${new Date(leaf.validFrom).toISOString()} (check this machine's clock)`,
      ),
    );
  }
  const subjectAltNames = (leaf.subjectAltName ?? "")
    .split(", ")
    .filter((name) => name !== "")
    .map((name) => (name.startsWith("DNS:") ? `DNS:${name.slice(4).toLowerCase()}` : name));
  if (!subjectAltNames.includes(`DNS:${hostname.toLowerCase()}`)) {
    throw new AcmeError(
      `the ACME server issued a certificate for ${subjectAltNames.join(", ") || "no names"}, not ${hostname}; the current certificate was kept`,
      { step: STEP, subjectAltNames },
    );
  }
  return { leaf, subjectAltNames } satisfies CheckedChain;
}
