/**
 * The `tls` check: the served certificate is valid, how many days it has left, and whether it
 * is the one in cert.pem. Notebook 6 re-reads cert.pem on every connection, so a difference
 * means the server was started with another certfile (or a server that caches it needs a restart).
 */
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { CheckStatus, HealthCheck } from "@nbfleet/shared";
import { formatFingerprint } from "../tls/fingerprint.js";
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

  const findings: { status: CheckStatus; message: string }[] = [];
  if (daysLeft < 0) {
    findings.push({ status: "fail", message: `the certificate expired on ${notAfter.toISOString()}` });
  } else if (now < notBefore) {
    findings.push({
      status: "fail",
      message: `the certificate is not valid before ${notBefore.toISOString()}`,
    });
  } else if (daysLeft < CERT_WARN_DAYS) {
    findings.push({ status: "warn", message: `the certificate expires in ${daysLeft} days` });
  }

  try {
    const onDisk = new X509Certificate(await readFile(target.certFile));
    if (formatFingerprint(onDisk.fingerprint256) !== served.fingerprintSha256) {
      data.fileFingerprintSha256 = formatFingerprint(onDisk.fingerprint256);
      findings.push({
        status: "warn",
        message: `the served certificate differs from ${target.certFile}: restart needed to serve the new certificate`,
      });
    }
  } catch (error) {
    findings.push({
      status: "warn",
      message: `cannot compare with ${target.certFile}: ${describeError(error)}`,
    });
  }

  if (findings.length === 0) {
    return checkResult("tls", "pass", `certificate valid for ${daysLeft} more days`, now, data);
  }
  const status = findings.some((f) => f.status === "fail") ? "fail" : "warn";
  return checkResult("tls", status, findings.map((f) => f.message).join("; "), now, data);
}
