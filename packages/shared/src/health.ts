/**
 * The health model of DESIGN.md: agent link, notebook lifecycle, named checks and their fold
 * into one overall status. The agent produces NotebookStatus + HealthReport; the controller
 * adds the link and turns everything into `unknown` when the agent is not connected.
 */
import { type Static, Type } from "@sinclair/typebox";
import { OVERALL_HEALTHS } from "./states.js";

export const AgentLinkStatus = Type.Union([
  Type.Literal("connected"),
  Type.Literal("disconnected"),
  Type.Literal("never_connected"),
]);
export type AgentLinkStatus = Static<typeof AgentLinkStatus>;

export const NOTEBOOK_STATES = [
  "not_installed",
  "installing",
  "stopped",
  "starting",
  "running",
  "stopping",
  "backoff",
  "failed",
] as const;
export const NotebookState = Type.Union(NOTEBOOK_STATES.map((s) => Type.Literal(s)));
export type NotebookState = Static<typeof NotebookState>;

export const CHECK_NAMES = ["process", "https", "auth", "tls", "kernel", "resources", "activity"] as const;
export const CheckName = Type.Union(CHECK_NAMES.map((s) => Type.Literal(s)));
export type CheckName = Static<typeof CheckName>;

export const CheckStatus = Type.Union([Type.Literal("pass"), Type.Literal("warn"), Type.Literal("fail")]);
export type CheckStatus = Static<typeof CheckStatus>;

export const HealthCheck = Type.Object({
  name: CheckName,
  status: CheckStatus,
  message: Type.String(),
  checkedAt: Type.String({ format: "date-time" }),
  /** Check-specific facts (fingerprint, days left, kernel count, ...). */
  data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export type HealthCheck = Static<typeof HealthCheck>;

export const OverallHealth = Type.Union(OVERALL_HEALTHS.map((h) => Type.Literal(h)));
export type OverallHealth = Static<typeof OverallHealth>;

export const HealthReport = Type.Object({
  status: OverallHealth,
  reasons: Type.Array(Type.String()),
  checks: Type.Array(HealthCheck),
  observedAt: Type.String({ format: "date-time" }),
});
export type HealthReport = Static<typeof HealthReport>;

/** Who vouches for a served certificate: the agent itself, an ACME CA, or the operator. */
export const CERTIFICATE_ISSUER_KINDS = ["self-signed", "acme", "provided"] as const;
export const CertificateIssuerKind = Type.Union(CERTIFICATE_ISSUER_KINDS.map((k) => Type.Literal(k)));
export type CertificateIssuerKind = Static<typeof CertificateIssuerKind>;

export const CertificateIssuer = Type.Object({
  kind: CertificateIssuerKind,
  /**
   * For people: `acme` → the ACME directory's host (e.g. `acme-v02.api.letsencrypt.org`);
   * `provided` → the issuing CA's common name (or its subject); `self-signed` → the subject.
   */
  name: Type.String({ maxLength: 512 }),
});
export type CertificateIssuer = Static<typeof CertificateIssuer>;

export const CertificateInfo = Type.Object({
  fingerprintSha256: Type.String(),
  notBefore: Type.String({ format: "date-time" }),
  notAfter: Type.String({ format: "date-time" }),
  subjectAltNames: Type.Array(Type.String()),
  selfSigned: Type.Boolean(),
  // Optional: agents before issue 15 do not report them (protocol minor, not major).
  issuer: Type.Optional(CertificateIssuer),
  /** Each certificate of the served chain is within its validity and signed by the next one. */
  chainValid: Type.Optional(Type.Boolean()),
  /** Why `chainValid` is false (null when it is true). */
  chainProblem: Type.Optional(Type.Union([Type.String({ maxLength: 1024 }), Type.Null()])),
  /** Whole days until notAfter when reported; negative once expired. */
  daysLeft: Type.Optional(Type.Integer()),
});
export type CertificateInfo = Static<typeof CertificateInfo>;

export const JupyterGeneration = Type.Union([Type.Literal("notebook6"), Type.Literal("server2")]);
export type JupyterGeneration = Static<typeof JupyterGeneration>;

export const NotebookStatus = Type.Object({
  state: NotebookState,
  pid: Type.Union([Type.Integer(), Type.Null()]),
  port: Type.Integer({ minimum: 1, maximum: 65535 }),
  url: Type.String(),
  restarts: Type.Integer({ minimum: 0 }),
  startedAt: Type.Union([Type.String({ format: "date-time" }), Type.Null()]),
  generation: Type.Union([JupyterGeneration, Type.Null()]),
  version: Type.Union([Type.String(), Type.Null()]),
  certificate: Type.Union([CertificateInfo, Type.Null()]),
  /** Why the server is in `backoff` or `failed`, with the last log lines. */
  lastError: Type.Union([Type.String(), Type.Null()]),
});
export type NotebookStatus = Static<typeof NotebookStatus>;

/**
 * Folds checks into one status: any fail → unhealthy, any warn → degraded, else healthy.
 * A notebook that is not running is unhealthy whatever its checks say.
 */
export function foldHealth(
  checks: HealthCheck[],
  notebookState: NotebookState,
  now: Date = new Date(),
): HealthReport {
  const reasons: string[] = [];
  if (notebookState !== "running") reasons.push(`notebook is ${notebookState}`);
  for (const check of checks) {
    if (check.status !== "pass") reasons.push(`${check.name}: ${check.message}`);
  }
  const anyFail = notebookState !== "running" || checks.some((c) => c.status === "fail");
  const anyWarn = checks.some((c) => c.status === "warn");
  const status: OverallHealth = anyFail ? "unhealthy" : anyWarn ? "degraded" : "healthy";
  return { status, reasons, checks, observedAt: now.toISOString() };
}
