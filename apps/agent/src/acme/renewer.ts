import { type CurrentCertificate, renewalDueAt, retryAt } from "@nbfleet/acme";
/**
 * Keeps an ACME-configured machine's certificate issued and renewed without a person: on each
 * `tick` (the agent's check loop) it asks the CA when renewal-schedule.ts says it is time, one
 * issuance at a time, in the background. Each issuance runs in a child process
 * (`nbfleet-agent certificate acme --json --no-restart`): acme-client loads @peculiar/x509, which
 * the long-lived agent never loads (see ../tls/certificate-child.ts). The caller serves the new
 * pair (`onIssued`: restart or reload) and shows failures (`onFailed`, `lastFailure`).
 */
import { AgentError } from "../errors.js";
import { agentCommandLine } from "../tls/certificate-child.js";
import { runJsonChild } from "../util/json-child.js";

const ISSUANCE_TIMEOUT_MS = 180_000;

export interface IssuedCertificate extends CurrentCertificate {
  fingerprintSha256: string;
  issuer: string;
  directoryUrl: string;
}

export interface RenewalFailure {
  at: string;
  code: string;
  message: string;
  /** The ACME problem type, when the CA gave one. */
  problemType?: string;
  failures: number;
  nextAttemptAt: string;
}

export interface RenewerOptions {
  dataDir: string;
  hostname: string;
  /** One issuance; by default `certificate acme` in a child process of this agent. */
  issue?: () => Promise<IssuedCertificate>;
  onIssued: (issued: IssuedCertificate) => Promise<void> | void;
  onFailed?: (failure: RenewalFailure) => void;
  now?: () => Date;
  random?: () => number;
}

export class AcmeRenewer {
  private failures = 0;
  private notBeforeRetry: Date | null = null;
  private inFlight: Promise<void> | null = null;
  private failure: RenewalFailure | null = null;
  private readonly now: () => Date;
  private readonly issue: () => Promise<IssuedCertificate>;

  constructor(private readonly options: RenewerOptions) {
    this.now = options.now ?? (() => new Date());
    this.issue = options.issue ?? (() => issueInChild(options.dataDir));
  }

  /** The last failure since the last success (null once a certificate was issued). */
  lastFailure(): RenewalFailure | null {
    return this.failure;
  }

  /** When the next attempt is due for what is served now. */
  nextAttemptAt(current: CurrentCertificate | null): Date {
    const due = renewalDueAt(current, this.options.hostname, this.now());
    return this.notBeforeRetry && this.notBeforeRetry > due ? this.notBeforeRetry : due;
  }

  /** Starts an issuance in the background when one is due; the running one otherwise. */
  tick(current: CurrentCertificate | null): Promise<void> | null {
    if (this.inFlight) return this.inFlight;
    if (this.nextAttemptAt(current) > this.now()) return null;
    const run = this.attempt(current).finally(() => {
      this.inFlight = null;
    });
    this.inFlight = run;
    return run;
  }

  /**
   * An issuance now, whatever the schedule (an operator's `certificate.rotate`), after the one
   * under way if any; its failure is recorded as a scheduled one's and thrown to the caller.
   */
  async renewNow(current: CurrentCertificate | null): Promise<IssuedCertificate> {
    await this.inFlight?.catch(() => undefined);
    let outcome: { issued?: IssuedCertificate; error?: unknown } = {};
    const run = this.attempt(current, (result) => {
      outcome = result;
    }).finally(() => {
      this.inFlight = null;
    });
    this.inFlight = run;
    await run;
    if (outcome.issued) return outcome.issued;
    throw outcome.error;
  }

  private async attempt(
    current: CurrentCertificate | null,
    report: (outcome: { issued?: IssuedCertificate; error?: unknown }) => void = () => {},
  ): Promise<void> {
    let issued: IssuedCertificate;
    try {
      issued = await this.issue();
    } catch (error) {
      report({ error });
      this.failures += 1;
      const details = error instanceof AgentError ? error.details : {};
      const next = retryAt({
        failures: this.failures,
        retryAt: typeof details.retryAt === "string" ? details.retryAt : null,
        notAfter: current && !current.selfSigned ? current.notAfter : null,
        now: this.now(),
        ...(this.options.random ? { random: this.options.random } : {}),
      });
      this.notBeforeRetry = next;
      this.failure = {
        at: this.now().toISOString(),
        code: error instanceof AgentError ? error.code : "NBF_INTERNAL",
        message: error instanceof Error ? error.message : String(error),
        ...(typeof details.problemType === "string" ? { problemType: details.problemType } : {}),
        failures: this.failures,
        nextAttemptAt: next.toISOString(),
      };
      this.options.onFailed?.(this.failure);
      return;
    }
    this.failures = 0;
    this.notBeforeRetry = null;
    this.failure = null;
    await this.options.onIssued(issued);
    report({ issued });
  }
}

/** `nbfleet-agent certificate acme --json --no-restart` for `dataDir`; its answer. */
export async function issueInChild(dataDir: string): Promise<IssuedCertificate> {
  const command = [
    ...agentCommandLine(),
    ...["certificate", "acme", "--data-dir", dataDir, "--json", "--no-restart"],
  ];
  const { answer, how, stderr } = await runJsonChild<IssuedCertificate>(command, {
    timeoutMs: ISSUANCE_TIMEOUT_MS,
  });
  if (answer?.ok) return answer;
  throw new AgentError("NBF_ACME_FAILED", `the ACME issuance child ${how}: ${stderr.trim() || "no answer"}`, {
    step: "child",
  });
}
