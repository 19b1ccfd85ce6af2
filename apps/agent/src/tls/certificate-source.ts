/**
 * Remembers which certificate the agent obtained over ACME, and from which directory:
 * DIR/state/certificate-source.json. Nothing in an issued chain says it came through ACME, so
 * the health model's `issuer.kind: "acme"` rests on this record, and only while cert.pem still
 * holds the certificate it names (an operator's pair installed since is theirs again).
 */
import path from "node:path";
import { writeFileAtomic } from "../util/atomic-write.js";
import { readTextIfPresent } from "../util/read-if-present.js";

export const CERTIFICATE_SOURCE_FILE = "certificate-source.json";

export interface AcmeCertificateSource {
  fingerprintSha256: string;
  kind: "acme";
  directoryUrl: string;
}

export function certificateSourceFile(stateDir: string): string {
  return path.join(stateDir, CERTIFICATE_SOURCE_FILE);
}

export async function recordAcmeCertificate(
  stateDir: string,
  source: Omit<AcmeCertificateSource, "kind">,
): Promise<void> {
  const record: AcmeCertificateSource = {
    fingerprintSha256: source.fingerprintSha256,
    kind: "acme",
    directoryUrl: source.directoryUrl,
  };
  await writeFileAtomic(certificateSourceFile(stateDir), `${JSON.stringify(record, null, 2)}\n`, {
    mode: 0o600,
  });
}

/**
 * The record, or null when there is none or it cannot be read as one: a damaged record only
 * costs the `acme` label (the certificate is then reported as provided), never the health report.
 */
export async function readCertificateSource(stateDir: string): Promise<AcmeCertificateSource | null> {
  let text: string | null;
  try {
    text = await readTextIfPresent(certificateSourceFile(stateDir));
  } catch {
    return null;
  }
  if (text === null) return null;
  try {
    const value = JSON.parse(text) as Partial<AcmeCertificateSource>;
    if (
      value.kind === "acme" &&
      typeof value.fingerprintSha256 === "string" &&
      typeof value.directoryUrl === "string"
    ) {
      return { kind: "acme", fingerprintSha256: value.fingerprintSha256, directoryUrl: value.directoryUrl };
    }
  } catch {
    // Damaged: as if absent (see above).
  }
  return null;
}

/**
 * After an ACME install: the certificate is in place whatever happens here, so a record that
 * cannot be written costs only its `acme` label (said on stderr), not the issuance.
 */
export async function noteAcmeSource(
  stateDir: string,
  fingerprintSha256: string,
  directoryUrl: string,
): Promise<void> {
  try {
    await recordAcmeCertificate(stateDir, { fingerprintSha256, directoryUrl });
  } catch (error) {
    console.error(
      `nbfleet-agent: the certificate is installed, but ${certificateSourceFile(stateDir)} could not be written (${(error as Error).message}); it is reported as provided`,
    );
  }
}
