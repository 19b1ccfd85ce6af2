/**
 * The controller's ACME files in its data dir, all 0600 in a 0700 `tls/` folder: the account key,
 * and the served certificate chain and its key. A pair is written whole (each file to a temp
 * name, then renamed) so a restart never finds a chain beside another chain's key; a missing or
 * unusable pair is replaced by a temporary self-signed one until the CA's arrives.
 */
import { X509Certificate, createPrivateKey } from "node:crypto";
import { chmod, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import { TEMPORARY_ORGANIZATION, temporaryCertificate } from "@nbfleet/acme";

export interface AcmeFiles {
  dir: string;
  accountKey: string;
  cert: string;
  key: string;
}

export function acmeFiles(dataDir: string): AcmeFiles {
  const dir = path.join(dataDir, "tls");
  return {
    dir,
    accountKey: path.join(dir, "acme-account-key.pem"),
    cert: path.join(dir, "acme-cert.pem"),
    key: path.join(dir, "acme-key.pem"),
  };
}

export interface ServedPair {
  certPem: string;
  keyPem: string;
  notBefore: string;
  notAfter: string;
  subjectAltNames: string[];
  /** The temporary certificate (or any self-signed one): renewal is due at once. */
  selfSigned: boolean;
  /** The issuer's CN (the CA's name), or the subject's for a self-signed one. */
  issuer: string;
  fingerprintSha256: string;
}

export function describePair(certPem: string, keyPem: string): ServedPair {
  const leaf = new X509Certificate(certPem);
  if (!leaf.checkPrivateKey(createPrivateKey(keyPem)))
    throw new Error("the key does not belong to the certificate");
  const selfSigned = leaf.issuer === leaf.subject || leaf.subject.includes(`O=${TEMPORARY_ORGANIZATION}`);
  return {
    certPem,
    keyPem,
    notBefore: new Date(leaf.validFrom).toISOString(),
    notAfter: new Date(leaf.validTo).toISOString(),
    subjectAltNames: (leaf.subjectAltName ?? "")
      .split(", ")
      .filter((name) => name !== "")
      .map((name) => (name.startsWith("DNS:") ? `DNS:${name.slice(4).toLowerCase()}` : name)),
    selfSigned,
    issuer: commonName(leaf.issuer),
    fingerprintSha256: leaf.fingerprint256.toUpperCase(),
  };
}

/** The stored pair, or a new temporary one for `domain` (written) when there is none usable. */
export async function loadOrCreatePair(
  files: AcmeFiles,
  domain: string,
): Promise<{ pair: ServedPair; created: boolean; problem?: string }> {
  let problem: string | undefined;
  try {
    const [certPem, keyPem] = await Promise.all([readFile(files.cert, "utf8"), readFile(files.key, "utf8")]);
    const pair = describePair(certPem, keyPem);
    await Promise.all([chmod(files.cert, 0o600), chmod(files.key, 0o600)]);
    return { pair, created: false };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") problem = (error as Error).message;
  }
  const temporary = await temporaryCertificate(domain);
  await writePair(files, temporary.certPem, temporary.keyPem);
  return {
    pair: describePair(temporary.certPem, temporary.keyPem),
    created: true,
    ...(problem ? { problem } : {}),
  };
}

export async function writePair(files: AcmeFiles, certPem: string, keyPem: string): Promise<void> {
  await mkdir(files.dir, { recursive: true, mode: 0o700 });
  const suffix = `.${process.pid}.${Date.now()}.tmp`;
  await writeFile(files.key + suffix, keyPem, { mode: 0o600 });
  await writeFile(files.cert + suffix, certPem, { mode: 0o600 });
  // Key first: a crash between the renames leaves a new key beside the old chain, which the
  // next start refuses (they do not match) and replaces; never a chain served with a stale key.
  await rename(files.key + suffix, files.key);
  await rename(files.cert + suffix, files.cert);
}

function commonName(name: string): string {
  const cn = name.split("\n").find((line) => line.startsWith("CN="));
  return cn ? cn.slice(3) : name.replace(/\n/g, ", ");
}
