/**
 * What the link is given: the controller's address and the trust to reach it with, the secrets,
 * what it serves, where it reports its status, and its timing (defaults from the agent's
 * settings).
 */
import type { LinkSettings } from "../config/settings.js";
import { DEFAULT_SETTINGS } from "../config/settings.js";
import type { AgentCore } from "../core.js";
import type { PinnedKeyRecord } from "../tls/pinned-connection.js";
import type { RetryPace } from "./close-reason.js";
import type { LinkLog } from "./log.js";
import type { LinkStreams } from "./streams.js";

export interface LinkTiming {
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** Ceiling after refusals only an operator can fix. */
  slowBackoffMs: number;
  /** A welcomed connection that lived this long resets the backoff. */
  stableMs: number;
  /** The controller's ping interval as assumed here; 3× of silence means it is gone. */
  pingIntervalMs: number;
  /** State changes are sent at most this often. */
  stateCoalesceMs: number;
  /** TCP + TLS + upgrade must finish within this. */
  dialTimeoutMs: number;
  /** Events kept while disconnected; the oldest go first. */
  maxBufferedEvents: number;
  /** Command results kept while disconnected. */
  maxUndeliveredResults: number;
}

export function timingFromSettings(link: LinkSettings): LinkTiming {
  return {
    initialBackoffMs: link.initialBackoffMs,
    maxBackoffMs: link.maxBackoffMs,
    slowBackoffMs: link.slowBackoffMs,
    stableMs: link.stableMs,
    pingIntervalMs: Math.round(link.pingIntervalSec * 1000),
    stateCoalesceMs: 250,
    dialTimeoutMs: 15_000,
    maxBufferedEvents: 256,
    maxUndeliveredResults: 100,
  };
}

export const DEFAULT_LINK_TIMING: LinkTiming = timingFromSettings(DEFAULT_SETTINGS.link);

export interface LinkTlsOptions {
  /** Trust only this CA (PEM file) for the controller's certificate. */
  caFile?: string;
  /** Pin the controller's own certificate (SHA-256, any hex spelling; stored uppercase colon hex). */
  fingerprintSha256?: string;
  /** With the fingerprint: where its certificate's key is learned and kept (link/pinned-key.ts). */
  pinnedKey?: PinnedKeyRecord;
}

/** `url`: the agent endpoint dialed (with several controllers, the one of this attempt). */
export type LinkStatus =
  | { state: "connecting"; attempt: number; url: string }
  | { state: "connected"; vmName: string; url: string }
  | { state: "waiting"; retryInMs: number; pace: RetryPace }
  | { state: "stopped" };

export interface LinkOptions {
  /**
   * The controller's base URL (http(s):// or ws(s)://) or its full agent endpoint; or several
   * (replicas), tried in turn, each with the same trust (`tls`).
   */
  url: string | readonly string[];
  /** Where the credential lives (read before each dial, written 0600 when one is issued). */
  credentialFile: string;
  /** One-time token, used while no credential is stored. */
  bootstrapToken?: string;
  tls?: LinkTlsOptions;
  core: AgentCore;
  log: LinkLog;
  signal: AbortSignal;
  /** Command names sent in the hello; all the protocol knows by default (plus the streams'). */
  capabilities?: string[];
  /** Serves terminal sessions and log streams; without it they are refused. */
  streams?: LinkStreams;
  timing?: Partial<LinkTiming>;
  hostname?: string;
  /** For tests: the jitter source. */
  random?: () => number;
  onStatus?: (status: LinkStatus) => void;
}
