/**
 * Keeps the profile's certificate and key usable: creates a self-signed pair when there is
 * none, repairs a broken one, renews it before it runs out, and installs or rotates on
 * request. A certificate an operator installed is never replaced behind their back: it is
 * kept while it works and reported as NBF_CERT_INVALID when it does not.
 */
import { type KeyObject, type X509Certificate, randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { AgentError } from "../errors.js";
import type { FileOwner } from "../util/atomic-write.js";
import { setModeAndOwner } from "../util/owned-file.js";
import { readTextIfPresent } from "../util/read-if-present.js";
import { generateInChild } from "./certificate-child.js";
import {
  type CertificateDetails,
  checkPair,
  describeCertificate,
  isManaged,
  keyMatches,
  parseCertificate,
  parsePrivateKey,
} from "./inspect.js";
import { sanEntries, subjectNames } from "./subject-names.js";

const DAY_MS = 24 * 60 * 60 * 1000;
const KEY_MODE = 0o600;
const CERT_MODE = 0o644;

export interface CertificatePaths {
  certFile: string;
  keyFile: string;
}

export interface EnsureOptions {
  hostnames?: string[];
  ips?: string[];
  renewBeforeDays?: number;
  /** Lifetime of a certificate the agent makes. */
  days?: number;
  now?: Date;
  owner?: FileOwner;
}

export type EnsureAction = "kept" | "generated" | "renewed" | "regenerated";

export interface EnsureResult {
  info: CertificateDetails;
  action: EnsureAction;
  /** Why a certificate was replaced, or a warning about a kept one; worth an event. */
  reason?: string;
}

export async function ensureCertificate(
  paths: CertificatePaths,
  options: EnsureOptions = {},
): Promise<EnsureResult> {
  const { renewBeforeDays = 30, now = new Date() } = options;
  const wanted = sanEntries(subjectNames(options));
  const certPem = await readTextIfPresent(paths.certFile);
  const keyPem = await readTextIfPresent(paths.keyFile);

  if (certPem === null && keyPem === null) {
    return { info: await writeSelfSigned(paths, options), action: "generated" };
  }
  const regenerate = async (why: string): Promise<EnsureResult> => ({
    info: await writeSelfSigned(paths, options),
    action: "regenerated",
    reason: why,
  });

  if (certPem === null) return regenerate(`${paths.certFile} is missing`);
  let cert: X509Certificate;
  try {
    cert = parseCertificate(certPem, paths.certFile);
  } catch (error) {
    return regenerate(message(error));
  }
  const renewWithin = renewBeforeDays * DAY_MS;

  if (!isManaged(cert)) {
    if (keyPem === null) {
      throw new AgentError(
        "NBF_CERT_INVALID",
        `${paths.keyFile} is missing for the installed certificate ${paths.certFile}; install the pair again or rotate to a self-signed certificate`,
        { file: paths.keyFile },
      );
    }
    const info = checkPair(certPem, keyPem, now, { cert: paths.certFile, key: paths.keyFile });
    await fixModes(paths, options.owner);
    if (Date.parse(info.notAfter) - now.getTime() > renewWithin) return { info, action: "kept" };
    return {
      info,
      action: "kept",
      reason: `the installed certificate expires on ${info.notAfter}; install a new one before then`,
    };
  }

  if (keyPem === null) return regenerate(`${paths.keyFile} is missing`);
  let key: KeyObject;
  try {
    key = parsePrivateKey(keyPem, paths.keyFile);
  } catch (error) {
    return regenerate(message(error));
  }
  if (!keyMatches(cert, key)) return regenerate(`${paths.keyFile} does not belong to ${paths.certFile}`);

  const info = describeCertificate(cert, now);
  if (now.getTime() < Date.parse(info.notBefore)) {
    return renew(paths, options, `the certificate is not valid before ${info.notBefore}`);
  }
  const msLeft = Date.parse(info.notAfter) - now.getTime();
  if (msLeft <= 0) return renew(paths, options, `the certificate expired on ${info.notAfter}`);
  if (msLeft <= renewWithin) {
    return renew(
      paths,
      options,
      `the certificate expires on ${info.notAfter}, within ${renewBeforeDays} days`,
    );
  }
  const missing = wanted.filter((name) => !info.subjectAltNames.includes(name));
  if (missing.length > 0) {
    return renew(paths, options, `the certificate does not cover ${missing.join(", ")}`);
  }
  await fixModes(paths, options.owner);
  return { info, action: "kept" };
}

/** Validates an operator's pair, then writes it in place of the current one. */
export async function installCertificate(
  paths: CertificatePaths,
  certPem: string,
  keyPem: string,
  options: { now?: Date; owner?: FileOwner } = {},
): Promise<CertificateDetails> {
  const info = checkPair(certPem, keyPem, options.now ?? new Date(), {
    cert: "the provided certificate",
    key: "the provided private key",
  });
  await writePair(paths, certPem, keyPem, options.owner);
  return info;
}

/** Replaces whatever is there with a fresh self-signed certificate. */
export async function rotateCertificate(
  paths: CertificatePaths,
  options: Omit<EnsureOptions, "renewBeforeDays"> = {},
): Promise<CertificateDetails> {
  return writeSelfSigned(paths, options);
}

async function renew(paths: CertificatePaths, options: EnsureOptions, why: string): Promise<EnsureResult> {
  return { info: await writeSelfSigned(paths, options), action: "renewed", reason: why };
}

async function writeSelfSigned(paths: CertificatePaths, options: EnsureOptions): Promise<CertificateDetails> {
  const now = options.now ?? new Date();
  const pair = await generateInChild({
    hostnames: options.hostnames,
    ips: options.ips,
    days: options.days,
    now,
  });
  const info = checkPair(pair.certPem, pair.keyPem, now);
  await writePair(paths, pair.certPem, pair.keyPem, options.owner);
  return info;
}

/**
 * Both files are staged beside their targets first and renamed only when both are written,
 * so a failure leaves the old pair untouched. The key goes in first: a crash between the
 * renames leaves a mismatch that the next ensure repairs.
 */
async function writePair(paths: CertificatePaths, certPem: string, keyPem: string, owner?: FileOwner) {
  await fs.mkdir(path.dirname(paths.keyFile), { recursive: true });
  await fs.mkdir(path.dirname(paths.certFile), { recursive: true });
  const keyTemp = await stage(paths.keyFile, keyPem, KEY_MODE, owner);
  let certTemp: string;
  try {
    certTemp = await stage(paths.certFile, certPem, CERT_MODE, owner);
  } catch (error) {
    await fs.rm(keyTemp, { force: true });
    throw error;
  }
  await fs.rename(keyTemp, paths.keyFile);
  await fs.rename(certTemp, paths.certFile);
}

async function stage(target: string, content: string, mode: number, owner?: FileOwner): Promise<string> {
  const temp = path.join(
    path.dirname(target),
    `.${path.basename(target)}.${randomBytes(6).toString("hex")}.tmp`,
  );
  const handle = await fs.open(temp, "wx", mode);
  try {
    await handle.chmod(mode);
    if (owner) await handle.chown(owner.uid, owner.gid);
    await handle.writeFile(content);
    await handle.sync();
  } catch (error) {
    await handle.close();
    await fs.rm(temp, { force: true });
    throw error;
  }
  await handle.close();
  return temp;
}

/** Through handles opened without following links (util/owned-file.ts): the agent runs as root. */
async function fixModes(paths: CertificatePaths, owner?: FileOwner): Promise<void> {
  await setModeAndOwner(paths.keyFile, "file", { mode: KEY_MODE, owner });
  if (owner) await setModeAndOwner(paths.certFile, "file", { owner });
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
