/**
 * Who vouches for the notebook's certificate, for the health model: the agent itself (its own
 * managed self-signed certificate), an ACME CA (only a chain the agent obtained over ACME, as
 * its certificate-source record says), or whoever issued a certificate the operator provided.
 */
import type { X509Certificate } from "node:crypto";
import type { CertificateIssuer } from "@nbfleet/shared";
import type { AcmeCertificateSource } from "./certificate-source.js";
import { formatFingerprint } from "./fingerprint.js";
import { isManaged } from "./inspect.js";

const NAME_MAX = 512;

export function issuerOf(leaf: X509Certificate, source: AcmeCertificateSource | null): CertificateIssuer {
  if (isManaged(leaf))
    return { kind: "self-signed", name: bounded(commonName(leaf.subject) ?? "nbfleet agent") };
  if (source && source.fingerprintSha256 === formatFingerprint(leaf.fingerprint256)) {
    return { kind: "acme", name: bounded(directoryHost(source.directoryUrl)) };
  }
  return { kind: "provided", name: bounded(commonName(leaf.issuer) ?? oneLine(leaf.issuer)) };
}

/** How a message names the certificate: "ACME certificate from acme-v02.api.letsencrypt.org". */
export function certificatePhrase(issuer: CertificateIssuer): string {
  switch (issuer.kind) {
    case "acme":
      return `ACME certificate from ${issuer.name}`;
    case "self-signed":
      return "self-signed certificate";
    case "provided":
      return `certificate issued by ${issuer.name}`;
  }
}

function directoryHost(url: string): string {
  try {
    return new URL(url).hostname.replace(/^\[|\]$/g, "");
  } catch {
    return url;
  }
}

/** The last CN of a distinguished name in node's rendering (one `KEY=value` a line). */
function commonName(name: string): string | null {
  const cns = name
    .split("\n")
    .filter((part) => part.startsWith("CN="))
    .map((part) => part.slice(3));
  return cns.at(-1) || null;
}

function oneLine(name: string): string {
  return name.split("\n").join(", ") || "an unnamed issuer";
}

function bounded(text: string): string {
  return text.length > NAME_MAX ? `${text.slice(0, NAME_MAX - 1)}…` : text;
}
