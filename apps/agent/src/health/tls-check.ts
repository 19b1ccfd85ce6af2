/**
 * The `tls` check: the served certificate is valid, how many days it has left, who issued it,
 * whether it is the one in cert.pem and whether cert.pem's chain holds together. Notebook 6
 * re-reads cert.pem on every connection, so a difference means the server was started with
 * another certfile (or a server that caches it needs a restart).
 */
import { readFile } from "node:fs/promises";
import type { CertificateInfo, CheckStatus, HealthCheck } from "@nbfleet/shared";
import { dataPaths } from "../config/paths.js";
import { readCertificateSource } from "../tls/certificate-source.js";
import { certificatePhrase } from "../tls/issuer.js";
import { certificateReport } from "../tls/report.js";
import { type ServedCertificate, fetchServedCertificate } from "../tls/served.js";
import { NETWORK_CHECK_TIMEOUT_MS } from "./http.js";
import { checkResult, describeError } from "./result.js";
import type { CheckTarget } from "./target.js";

export const CERT_WARN_DAYS = 30;
const DAY_MS = 86_400_000;

export async function checkTls(
  target: CheckTarget,
  now = new Date(),
  timeoutMs = NETWORK_CHECK_TIMEOUT_MS,
): Promise<HealthCheck> {
  let served: ServedCertificate;
  try {
    served = await fetchServedCertificate(target.host, target.port, undefined, { timeoutMs });
  } catch (error) {
    const message = describeError(error);
    // Notebook 6 (Tornado) loads certfile and keyfile on every connection; when they do not
    // match it logs KEY_VALUES_MISMATCH and leaves the connection hanging.
    const hint = message.includes("no TLS handshake") ? ` (does ${target.certFile} match its key?)` : "";
    return checkResult("tls", "fail", `${message}${hint}`, now);
  }
  const notBefore = new Date(served.notBefore);
  const notAfter = new Date(served.notAfter);
  const daysLeft = Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS);
  const data: Record<string, unknown> = {
    fingerprintSha256: served.fingerprintSha256,
    notAfter: notAfter.toISOString(),
    daysLeft,
  };

  // What cert.pem says about itself; the served certificate is described by it when they match.
  let onDisk: CertificateInfo | null = null;
  let diskProblem: string | null = null;
  try {
    const source = target.dataDir ? await readCertificateSource(dataPaths(target.dataDir).stateDir) : null;
    onDisk = certificateReport(await readFile(target.certFile, "utf8"), source, now, target.certFile);
  } catch (error) {
    diskProblem = describeError(error);
  }
  const same = onDisk?.fingerprintSha256 === served.fingerprintSha256;
  const phrase = same && onDisk?.issuer ? certificatePhrase(onDisk.issuer) : "certificate";
  if (same && onDisk) {
    Object.assign(data, { issuer: onDisk.issuer, chainValid: onDisk.chainValid });
    if (onDisk.chainProblem) data.chainProblem = onDisk.chainProblem;
  }

  const findings: { status: CheckStatus; message: string }[] = [];
  if (daysLeft < 0) {
    findings.push({ status: "fail", message: `the ${phrase} expired on ${notAfter.toISOString()}` });
  } else if (now < notBefore) {
    findings.push({
      status: "fail",
      message: `the ${phrase} is not valid before ${notBefore.toISOString()}`,
    });
  } else if (daysLeft < CERT_WARN_DAYS) {
    findings.push({ status: "warn", message: `the ${phrase} expires in ${daysLeft} days` });
  }

  if (diskProblem !== null) {
    findings.push({ status: "warn", message: `cannot compare with ${target.certFile}: ${diskProblem}` });
  } else if (!same && onDisk) {
    data.fileFingerprintSha256 = onDisk.fingerprintSha256;
    findings.push({
      status: "warn",
      message: `the served certificate differs from ${target.certFile}: restart needed to serve the new certificate`,
    });
  } else if (onDisk && onDisk.chainValid === false && daysLeft >= 0 && now >= notBefore) {
    // A client that checks the chain refuses it even though the leaf itself is fine.
    findings.push({
      status: "warn",
      message: `the chain in ${target.certFile} is broken: ${onDisk.chainProblem}`,
    });
  }

  if (findings.length === 0) {
    return checkResult("tls", "pass", `${phrase} valid for ${daysLeft} more days`, now, data);
  }
  const status = findings.some((f) => f.status === "fail") ? "fail" : "warn";
  return checkResult("tls", status, findings.map((f) => f.message).join("; "), now, data);
}
