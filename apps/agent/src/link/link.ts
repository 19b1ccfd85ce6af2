/**
 * The agent's one WebSocket to its controller. The agent dials out, says hello with its whole
 * state, and once welcomed reports state (on change, coalesced, and at the controller's
 * steady interval) and events, and answers commands with ack, progress and one result. The
 * life of the link is one reconnect loop around one connection at a time, made of named
 * routines, one file each:
 *
 *   dial ─▶ handshake: hello, welcome ─▶ dispatch (frames in) + report (state, events, results out)
 *    ▲                                                                        │
 *    └──── backoff (full jitter; slow after refusals an operator must fix) ◀──┘ close / silence
 *
 *   rotation.ts    with several controller URLs: which one the next dial goes to, and when
 *                  the backoff grows (per full round)
 *   dial.ts        pick the secret, read the CA file, open the socket (TLS checked first)
 *   connection.ts  one socket's life: frames in order, the silence watchdog, closing on shutdown
 *   handshake.ts   the hello with the whole state; the welcome, storing an issued credential
 *   dispatch.ts    what each controller frame sets off (commands, streams, refusals)
 *   report.ts      what goes out unasked, kept while disconnected
 *   close-reason.ts  what an ended connection means for the next dial (log line and pace)
 *
 * State is level-based: every hello carries the whole state again, never a diff. Events and
 * results that happen while disconnected are kept (bounded) and sent after the next welcome.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { WelcomeMessage } from "@nbfleet/shared";
import { AgentError } from "../errors.js";
import { Backoff } from "./backoff.js";
import {
  type CloseVerdict,
  type ConnectionEnd,
  cannotDial,
  judgeEnd,
  refusedSecret,
} from "./close-reason.js";
import { type Connection, newConnection, runConnection } from "./connection.js";
import { type DialPlan, dial, isLoopback, planDial, prepareDial } from "./dial.js";
import { type DispatchTargets, dispatch } from "./dispatch.js";
import { acceptWelcome, helloFrame } from "./handshake.js";
import { FoldingLog } from "./log.js";
import { sendFrame } from "./messages.js";
import { DEFAULT_LINK_TIMING, type LinkOptions, type LinkStatus, type LinkTiming } from "./options.js";
import { Reporter } from "./report.js";
import { Rotation } from "./rotation.js";
import { LinkSecrets } from "./secret.js";

export {
  DEFAULT_LINK_TIMING,
  type LinkOptions,
  type LinkStatus,
  type LinkTiming,
  type LinkTlsOptions,
  timingFromSettings,
} from "./options.js";

interface Ended {
  verdict: CloseVerdict;
  /** The connection was welcomed and lived longer than stableMs. */
  stable: boolean;
}

export class ControllerLink {
  private readonly timing: LinkTiming;
  /** One plan per controller URL, all with the same trust. */
  private readonly plans: Rotation<DialPlan>;
  private readonly backoff: Backoff;
  private readonly secrets: LinkSecrets;
  private readonly reporter: Reporter;
  private readonly dispatchTo: DispatchTargets;
  private readonly said: FoldingLog;
  private statusValue: LinkStatus = { state: "stopped" };
  private vmNameValue: string | null = null;
  private running = false;
  private attempt = 0;

  constructor(private readonly options: LinkOptions) {
    this.timing = { ...DEFAULT_LINK_TIMING, ...options.timing };
    const urls = typeof options.url === "string" ? [options.url] : [...options.url];
    if (urls.length === 0) throw new AgentError("NBF_INVALID_INPUT", "no controller URL to dial");
    this.plans = new Rotation(urls.map((url) => planDial({ ...options, url }, this.timing.dialTimeoutMs)));
    this.backoff = new Backoff(
      { initialMs: this.timing.initialBackoffMs, maxMs: this.timing.maxBackoffMs },
      options.random,
    );
    this.secrets = new LinkSecrets(options.credentialFile, options.bootstrapToken);
    this.reporter = new Reporter(options.core, this.timing, options.log);
    this.dispatchTo = {
      core: options.core,
      reporter: this.reporter,
      streams: options.streams,
      log: options.log,
      welcome: (connection, welcome) => this.welcome(connection, welcome),
    };
    this.said = new FoldingLog(options.log);
  }

  get status(): LinkStatus {
    return this.statusValue;
  }

  /** The VM the controller knows this agent as, once welcomed. */
  get vmName(): string | null {
    return this.vmNameValue;
  }

  /** Dials, and dials again, until the signal aborts; resolves once the last connection is closed. */
  async run(): Promise<void> {
    if (this.running) throw new Error("the controller link is already running");
    await this.checkSecretAtHand();
    this.running = true;
    this.warnIfClearText();
    const unfollow = this.reporter.follow();
    try {
      while (!this.options.signal.aborted) {
        const ended = await this.connectOnce();
        if (this.options.signal.aborted) break;
        await this.waitToRedial(ended);
      }
    } finally {
      unfollow();
      this.reporter.stop();
      this.running = false;
      this.setStatus({ state: "stopped" });
    }
  }

  /** One connection, from dial to close. */
  private async connectOnce(): Promise<Ended> {
    this.attempt++;
    const plan = this.plans.current;
    this.setStatus({ state: "connecting", attempt: this.attempt, url: plan.target.href });
    const ready = await prepareDial(plan, this.secrets);
    if (!ready.ok) return { verdict: cannotDial(ready.problem), stable: false };
    // From the socket's creation on, nothing is awaited until its listeners are on.
    const connection = newConnection(dial(plan, ready), ready.secret);
    const { signal, log } = this.options;
    return runConnection(
      connection,
      {
        opened: () => this.hello(connection),
        frame: (frame) => dispatch(connection, frame, this.dispatchTo),
        closed: (code, reason) => this.closed(connection, code, reason),
      },
      { signal, log, pingIntervalMs: this.timing.pingIntervalMs },
    );
  }

  private async waitToRedial({ verdict, stable }: Ended): Promise<void> {
    if (stable) {
      this.backoff.reset();
      this.plans.startRound();
    }
    this.said.say(verdict.level, verdict.message);
    // Whatever ended it, the next dial goes to the next URL; the ceiling grows per round (rotation.ts).
    const roundEnded = this.plans.moveOn();
    const { pace } = verdict;
    const cap = pace === "patient" ? this.timing.slowBackoffMs : this.timing.maxBackoffMs;
    const delay =
      pace === "slow"
        ? this.backoff.slow(this.timing.slowBackoffMs)
        : roundEnded
          ? this.backoff.next(cap)
          : this.backoff.draw(cap);
    this.setStatus({ state: "waiting", retryInMs: delay, pace });
    // An abort ends the wait early; the loop then ends.
    await sleep(delay, undefined, { signal: this.options.signal }).catch(() => undefined);
  }

  // ---- the routines of one connection -------------------------------------------------

  private hello(connection: Connection): void {
    this.reporter.stateSentInHello();
    sendFrame(connection.ws, helloFrame(this.options));
  }

  private async welcome(connection: Connection, welcome: WelcomeMessage): Promise<void> {
    const { log } = this.options;
    if (!(await acceptWelcome(connection, welcome, this.secrets, log))) return;
    this.reporter.attach(connection.ws);
    this.vmNameValue = welcome.vmName;
    this.said.flush();
    // Only one connection at a time, and the rotation moves on only after it ended.
    const { target } = this.plans.current;
    log.info(`connected to ${target.href} as VM ${welcome.vmName}`);
    this.setStatus({ state: "connected", vmName: welcome.vmName, url: target.href });
    this.reporter.resume(welcome.reportIntervalSec);
  }

  private closed(connection: Connection, code: number, reason: string): Ended {
    this.reporter.detach(connection.ws);
    if (connection.welcomed) this.options.streams?.disconnected();
    const end: ConnectionEnd = {
      code,
      reason,
      presented: connection.secret.presented,
      welcomed: connection.welcomed,
      error: connection.error,
      refusal: connection.refusal,
    };
    if (refusedSecret(end)) this.secrets.refused(connection.secret);
    const verdict =
      connection.verdict ?? judgeEnd(end, this.plans.current.target, this.options.credentialFile);
    const stable =
      connection.welcomedAt !== null && Date.now() - connection.welcomedAt > this.timing.stableMs;
    return { verdict, stable };
  }

  // ---- before the first dial ------------------------------------------------------------

  private async checkSecretAtHand(): Promise<void> {
    if (await this.secrets.any()) return;
    const file = this.options.credentialFile;
    throw new AgentError(
      "NBF_INVALID_INPUT",
      `no controller credential at ${file} and no bootstrap token; ` +
        "give one with --bootstrap-token-file or NBFLEET_BOOTSTRAP_TOKEN",
      { file },
    );
  }

  private warnIfClearText(): void {
    for (const { target } of this.plans.all) {
      if (target.protocol === "ws:" && !isLoopback(target)) {
        this.options.log.warn(
          `the controller at ${target.origin} is reached without TLS: the credential travels in clear text`,
        );
      }
    }
  }

  private setStatus(status: LinkStatus): void {
    this.statusValue = status;
    this.options.onStatus?.(status);
  }
}

/** `new ControllerLink(options).run()`. */
export function runLink(options: LinkOptions): Promise<void> {
  return new ControllerLink(options).run();
}
