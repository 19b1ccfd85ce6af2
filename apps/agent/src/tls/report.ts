/**
 * The notebook's certificate as the health model reports it (`NotebookStatus.certificate`):
 * the leaf's own details, who issued it, whether the chain in cert.pem holds together and the
 * days left.
 */
import type { CertificateInfo } from "@nbfleet/shared";
import { type AcmeCertificateSource, readCertificateSource } from "./certificate-source.js";
import { checkChain, splitChain } from "./chain.js";
import { describeCertificate, parseCertificate } from "./inspect.js";
import { issuerOf } from "./issuer.js";

const PROBLEM_MAX = 1024;

export function certificateReport(
  chainPem: string,
  source: AcmeCertificateSource | null,
  now: Date = new Date(),
  label?: string,
): CertificateInfo {
  const leaf = parseCertificate(chainPem, label);
  const { fingerprintSha256, notBefore, notAfter, subjectAltNames, selfSigned, daysLeft } =
    describeCertificate(leaf, now);
  let verdict: { valid: boolean; problem: string | null };
  try {
    verdict = checkChain(splitChain(chainPem), now);
  } catch (error) {
    verdict = {
      valid: false,
      problem: `a certificate of the chain cannot be parsed: ${(error as Error).message}`,
    };
  }
  return {
    fingerprintSha256,
    notBefore,
    notAfter,
    subjectAltNames,
    selfSigned,
    issuer: issuerOf(leaf, source),
    chainValid: verdict.valid,
    chainProblem: verdict.problem === null ? null : verdict.problem.slice(0, PROBLEM_MAX),
    daysLeft,
  };
}

/** The report for the profile's cert.pem, with the agent's record of where it came from. */
export async function reportCertificateFile(
  certPem: string,
  paths: { certFile: string; stateDir: string },
  now: Date = new Date(),
): Promise<CertificateInfo> {
  return certificateReport(certPem, await readCertificateSource(paths.stateDir), now, paths.certFile);
}
