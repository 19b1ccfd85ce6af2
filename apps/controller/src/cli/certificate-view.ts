/**
 * How the CLI shows a machine's certificate: the CERT column of `vm ls` (issuer kind and days
 * left) and the lines of `vm show` (mode asked at creation, issuer served, chain, expiry).
 */
import type { CertificateInfo, CertificateIssuerKind, VmView } from "@nbfleet/shared";

const DAY_MS = 86_400_000;

const KIND_SHORT: Record<CertificateIssuerKind, string> = {
  "self-signed": "self",
  acme: "acme",
  provided: "provided",
};

/**
 * Whole days until notAfter, negative once expired: the agent's own figure when it sent one,
 * else counted here the way the agent counts (older agents do not send it).
 */
export function certificateDaysLeft(cert: CertificateInfo, now = Date.now()): number {
  if (cert.daysLeft !== undefined) return cert.daysLeft;
  return Math.floor((Date.parse(cert.notAfter) - now) / DAY_MS);
}

/**
 * Who issued it. Agents from before issue 15 send no issuer; for them a certificate that is not
 * self-signed can only have been installed by the operator.
 */
export function certificateIssuerKind(cert: CertificateInfo): CertificateIssuerKind {
  return cert.issuer?.kind ?? (cert.selfSigned ? "self-signed" : "provided");
}

/** The CERT column: `acme 63d`, `self 3649d`, `provided expired`, `-` when none is reported. */
export function certificateCell(vm: VmView, now = Date.now()): string {
  const cert = vm.notebook.certificate;
  if (!cert) return "-";
  const days = certificateDaysLeft(cert, now);
  const kind = KIND_SHORT[certificateIssuerKind(cert)];
  if (Date.parse(cert.notBefore) > now) return `${kind} not yet valid`;
  return days < 0 ? `${kind} expired` : `${kind} ${days}d`;
}

/** The `certificate:` lines of `vm show`. */
export function certificateLines(vm: VmView, now = Date.now()): string[] {
  const asked = vm.certificate;
  const requested = asked
    ? `${asked.mode}${asked.hostname ? ` for ${asked.hostname}` : ""}`
    : "- (controller too old to say)";
  const cert = vm.notebook.certificate;
  if (!cert) return [`certificate: ${requested} (requested); none reported yet`];
  const days = certificateDaysLeft(cert, now);
  const issuer = cert.issuer
    ? `${cert.issuer.kind} (${cert.issuer.name})`
    : `${certificateIssuerKind(cert)} (the agent does not report the issuer)`;
  const chain =
    cert.chainValid === undefined
      ? "not reported"
      : cert.chainValid
        ? "valid"
        : `INVALID: ${cert.chainProblem ?? "no reason given"}`;
  const left =
    Date.parse(cert.notBefore) > now
      ? `not valid before ${cert.notBefore}`
      : days < 0
        ? `EXPIRED ${-days} day(s) ago`
        : `${days} day(s) left`;
  return [
    `certificate: ${requested} (requested)`,
    `  served:    ${issuer}`,
    `  chain:     ${chain}`,
    `  expires:   ${cert.notAfter}, ${left}`,
    `  names:     ${cert.subjectAltNames.join(", ") || "-"}`,
    `  sha-256:   ${cert.fingerprintSha256}`,
  ];
}

/**
 * The certificate a `certificate.rotate` command left served, from its result (the agent answers
 * with its state); null when the result does not carry one (an agent that answers with nothing).
 */
export function certificateFromResult(result: unknown): CertificateInfo | null {
  const cert = (result as { notebook?: { certificate?: unknown } } | null)?.notebook?.certificate;
  if (typeof cert !== "object" || cert === null) return null;
  const { fingerprintSha256, notBefore, notAfter } = cert as Record<string, unknown>;
  if (typeof fingerprintSha256 !== "string" || typeof notBefore !== "string" || typeof notAfter !== "string")
    return null;
  return cert as CertificateInfo;
}

/** One line for a served certificate: `acme (host), until <notAfter>, 63 day(s) left, SHA-256 …`. */
export function certificateSummary(cert: CertificateInfo, now = Date.now()): string {
  const days = certificateDaysLeft(cert, now);
  const issuer = cert.issuer ? `${cert.issuer.kind} (${cert.issuer.name})` : certificateIssuerKind(cert);
  const left = days < 0 ? `EXPIRED ${-days} day(s) ago` : `${days} day(s) left`;
  const chain = cert.chainValid === false ? `, chain INVALID: ${cert.chainProblem ?? "no reason given"}` : "";
  return `${issuer}, until ${cert.notAfter}, ${left}${chain}, SHA-256 ${cert.fingerprintSha256}`;
}
