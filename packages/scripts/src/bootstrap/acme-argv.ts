/** The agent's `up` flags for a notebook certificate from an ACME CA (none: self-signed). */
import type { GuestCertificate } from "./options.js";

/** `caFile`: where the bootstrap writes `certificate.caPem` on the guest. */
export function acmeArgv(certificate: GuestCertificate | undefined, caFile: string): string[] {
  if (!certificate) return [];
  return [
    ...["--certificate-mode", "acme", "--acme-hostname", certificate.hostname],
    ...["--acme-directory", certificate.directoryUrl],
    ...(certificate.email !== null ? ["--acme-email", certificate.email] : []),
    ...(certificate.caPem !== undefined ? ["--acme-ca-file", caFile] : []),
    ...[
      "--acme-challenge",
      certificate.challenge,
      "--acme-challenge-port",
      String(certificate.challengePort),
    ],
  ];
}
