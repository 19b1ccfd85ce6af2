/**
 * The controller's own TLS certificate from an ACME CA (`--acme-domain`, NBFLEET_ACME_DOMAIN):
 * served from the first start (a temporary self-signed one until the CA's chain arrives), the
 * TLS-ALPN-01 challenge answered on the controller's own listener, the issued chain swapped in
 * without a restart (`server.setSecureContext`), and renewed by itself on the agent's schedule
 * (@nbfleet/acme renewal-schedule: 30 days or a third of the lifetime before expiry, spread per
 * name; jittered backoff after a failure, never before the CA's Retry-After). A failure keeps the
 * served certificate, logs one line saying why and when the next attempt is, and emits
 * `controller.certificate_failed`; a success emits `controller.certificate_issued`.
 */
import type tls from "node:tls";
import { AcmeError, type IssuedChain, issueCertificate, renewalDueAt, retryAt } from "@nbfleet/acme";
import type { NewEvent } from "../../events/bus.js";
import { AlpnChallengeListener } from "./challenge-listener.js";
import {
  type AcmeFiles,
  type ServedPair,
  acmeFiles,
  describePair,
  loadOrCreatePair,
  writePair,
} from "./pair-files.js";

const DAY_MS = 86_400_000;
/** Woken at least this often, so a changed clock or a long sleep is noticed. */
const MAX_SLEEP_MS = 3_600_000;
const ISSUANCE_TIMEOUT_MS = 120_000;
/** How long closing waits for an issuance under way (it may wait on the CA for minutes). */
const STOP_WAIT_MS = 1000;

export interface OwnAcmeOptions {
  domain: string;
  directoryUrl: string;
  email: string | null;
  caFile: string | null;
  dataDir: string;
  now?: () => Date;
  random?: () => number;
}

export interface OwnCertificateLog {
  info(object: object, message: string): void;
  warn(object: object, message: string): void;
  error(object: object, message: string): void;
}

declare module "fastify" {
  interface FastifyInstance {
    /** The controller's own ACME certificate (`acmeDomain`); null with tlsCert files or plain HTTP. */
    ownCertificate: OwnAcmeCertificate | null;
  }
}

export interface OwnCertificateFailure {
  at: string;
  message: string;
  problemType?: string;
  failures: number;
  nextAttemptAt: string;
}

/** What `/healthz` shows of the controller's own certificate. */
export interface OwnCertificateStatus {
  source: "acme";
  domain: string;
  issuer: { kind: "acme" | "self-signed"; name: string };
  notAfter: string;
  daysLeft: number;
  fingerprintSha256: string;
  directoryUrl: string;
  nextAttemptAt: string | null;
  lastIssuedAt: string | null;
  failure: OwnCertificateFailure | null;
}

export class OwnAcmeCertificate {
  readonly files: AcmeFiles;
  private readonly challenges = new AlpnChallengeListener();
  private readonly now: () => Date;
  private server: tls.Server | null = null;
  private emit: (event: NewEvent) => void = () => {};
  private log: OwnCertificateLog | null = null;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  private failures = 0;
  private notBeforeRetry: Date | null = null;
  private failure: OwnCertificateFailure | null = null;
  private lastIssuedAt: string | null = null;

  private constructor(
    private readonly options: OwnAcmeOptions,
    private served: ServedPair,
    /** What the start found, said once there is a log. */
    private readonly startNote: string | null,
  ) {
    this.files = acmeFiles(options.dataDir);
    this.now = options.now ?? (() => new Date());
  }

  /** Reads the stored pair, or makes the temporary one; nothing is asked of the CA yet. */
  static async prepare(options: OwnAcmeOptions): Promise<OwnAcmeCertificate> {
    const { pair, created, problem } = await loadOrCreatePair(acmeFiles(options.dataDir), options.domain);
    const note = problem
      ? `the stored certificate for ${options.domain} is unusable (${problem}); serving a temporary self-signed one until the ACME CA issues`
      : created
        ? `serving a temporary self-signed certificate for ${options.domain} until the ACME CA issues one`
        : null;
    return new OwnAcmeCertificate(options, pair, note);
  }

  /** The https options: the served pair and the challenge routing. */
  httpsOptions(): Pick<tls.TlsOptions, "cert" | "key" | "ALPNCallback" | "SNICallback"> {
    return { cert: this.served.certPem, key: this.served.keyPem, ...this.challenges.serverOptions() };
  }

  /** Starts renewing on `server` (listening, so the CA can validate); events go to `emit`. */
  start(server: tls.Server, hooks: { emit: (event: NewEvent) => void; log: OwnCertificateLog }): void {
    this.server = server;
    this.emit = hooks.emit;
    this.log = hooks.log;
    if (this.startNote) hooks.log.warn({ domain: this.options.domain }, this.startNote);
    this.challenges.attach(server);
    this.schedule();
  }

  /** An issuance under way is abandoned (nothing is written after this); its wait is bounded. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.running?.catch(() => undefined),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, STOP_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
  }

  /** When the next issuance is due for what is served. */
  nextAttemptAt(): Date {
    const due = renewalDueAt(this.served, this.options.domain, this.now());
    return this.notBeforeRetry && this.notBeforeRetry > due ? this.notBeforeRetry : due;
  }

  status(): OwnCertificateStatus {
    const { served } = this;
    return {
      source: "acme",
      domain: this.options.domain,
      issuer: { kind: served.selfSigned ? "self-signed" : "acme", name: served.issuer },
      notAfter: served.notAfter,
      daysLeft: Math.max(0, Math.floor((Date.parse(served.notAfter) - this.now().getTime()) / DAY_MS)),
      fingerprintSha256: served.fingerprintSha256,
      directoryUrl: this.options.directoryUrl,
      nextAttemptAt: this.stopped ? null : this.nextAttemptAt().toISOString(),
      lastIssuedAt: this.lastIssuedAt,
      failure: this.failure,
    };
  }

  /** An issuance now (after the one under way, if any), whatever the schedule. */
  async renewNow(): Promise<void> {
    await this.running?.catch(() => undefined);
    await this.run();
  }

  private schedule(): void {
    if (this.stopped) return;
    if (this.timer) clearTimeout(this.timer);
    const delay = Math.min(MAX_SLEEP_MS, Math.max(0, this.nextAttemptAt().getTime() - this.now().getTime()));
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.nextAttemptAt() > this.now()) return this.schedule();
      void this.run();
    }, delay);
    this.timer.unref();
  }

  private run(): Promise<void> {
    const run = this.attempt().finally(() => {
      if (this.running === run) this.running = null;
      this.schedule();
    });
    this.running = run;
    return run;
  }

  private async attempt(): Promise<void> {
    const { domain, directoryUrl } = this.options;
    let issued: IssuedChain;
    try {
      issued = await issueCertificate({
        hostname: domain,
        directoryUrl,
        email: this.options.email,
        caFile: this.options.caFile,
        caFileSetting: "NBFLEET_ACME_CA_FILE",
        accountKeyFile: this.files.accountKey,
        challenge: "tls-alpn-01",
        answer: this.challenges.answer,
        timeoutMs: ISSUANCE_TIMEOUT_MS,
      });
      if (this.stopped) return;
      const pair = describePair(issued.chainPem, issued.keyPem);
      await writePair(this.files, issued.chainPem, issued.keyPem);
      this.server?.setSecureContext({ cert: issued.chainPem, key: issued.keyPem });
      this.served = pair;
    } catch (error) {
      if (this.stopped) return;
      this.failed(error);
      return;
    }
    const hadFailed = this.failures > 0;
    this.failures = 0;
    this.notBeforeRetry = null;
    this.failure = null;
    this.lastIssuedAt = this.now().toISOString();
    const message = `the controller now serves a certificate for ${domain} from ${issued.issuer} (${directoryUrl}), valid until ${issued.notAfter}${hadFailed ? " (after earlier failures)" : ""}`;
    this.log?.info({ domain, issuer: issued.issuer, notAfter: issued.notAfter }, message);
    this.emit({
      vmName: null,
      kind: "controller.certificate_issued",
      message,
      data: { domain, issuer: issued.issuer, directoryUrl, notAfter: issued.notAfter },
    });
  }

  private failed(error: unknown): void {
    const { domain } = this.options;
    this.failures += 1;
    const details = error instanceof AcmeError ? error.details : {};
    const next = retryAt({
      failures: this.failures,
      retryAt: typeof details.retryAt === "string" ? details.retryAt : null,
      notAfter: this.served.selfSigned ? null : this.served.notAfter,
      now: this.now(),
      ...(this.options.random ? { random: this.options.random } : {}),
    });
    this.notBeforeRetry = next;
    const reason = error instanceof Error ? error.message : String(error);
    this.failure = {
      at: this.now().toISOString(),
      message: reason,
      ...(typeof details.problemType === "string" ? { problemType: details.problemType } : {}),
      failures: this.failures,
      nextAttemptAt: next.toISOString(),
    };
    const kept = this.served.selfSigned
      ? "the temporary self-signed certificate stays"
      : `the certificate from ${this.served.issuer} (valid until ${this.served.notAfter}) stays`;
    const message = `ACME issuance of the controller's certificate for ${domain} failed (${this.failures} in a row): ${reason}; ${kept}; next attempt at ${next.toISOString()}`;
    this.log?.error({ err: error, domain, failure: this.failure }, message);
    this.emit({
      vmName: null,
      kind: "controller.certificate_failed",
      level: "warn",
      message,
      data: { domain, ...this.failure },
    });
  }
}
