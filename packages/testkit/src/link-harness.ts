/**
 * Runs a ControllerLink for a test: a temp credential file, a recording log, every status
 * change recorded (and waitable), fast timers, and a stop that waits for the link to end.
 */
import { rm } from "node:fs/promises";
import path from "node:path";
import type { AgentCore } from "@nbfleet/agent";
import { ControllerLink, type LinkOptions, type LinkStatus, type LinkTiming } from "@nbfleet/agent";
import { makeDataDir } from "./data-dir.js";
import { RecordingLog } from "./recording-log.js";
import { Waiters } from "./waiters.js";

export const FAST_TIMING: Partial<LinkTiming> = {
  initialBackoffMs: 20,
  maxBackoffMs: 200,
  slowBackoffMs: 2000,
  pingIntervalMs: 10_000,
  stateCoalesceMs: 50,
  dialTimeoutMs: 5000,
};

export interface LinkHarness {
  link: ControllerLink;
  log: RecordingLog;
  statuses: Array<{ at: number; status: LinkStatus }>;
  credentialFile: string;
  /** Resolves with the link's run() outcome (rejects if run() threw). */
  done: Promise<void>;
  /** The first status (from index `from` of `statuses`) that matches. */
  waitForStatus(
    match: (status: LinkStatus) => boolean,
    what: string,
    options?: { from?: number; timeoutMs?: number },
  ): Promise<LinkStatus>;
  stop(): Promise<void>;
}

export function startLink(
  options: { url: LinkOptions["url"]; core: AgentCore } & Partial<Omit<LinkOptions, "signal" | "log">>,
): LinkHarness {
  const dir = makeDataDir("nbf-link-", 0o700);
  const abort = new AbortController();
  const log = new RecordingLog();
  const waiters = new Waiters();
  const statuses: LinkHarness["statuses"] = [];
  const credentialFile = options.credentialFile ?? path.join(dir, "state", "controller-credential");
  const link = new ControllerLink({
    credentialFile,
    ...options,
    timing: { ...FAST_TIMING, ...options.timing },
    log,
    signal: abort.signal,
    onStatus: (status) => {
      statuses.push({ at: Date.now(), status });
      options.onStatus?.(status);
      waiters.notify();
    },
  });
  const done = link.run();
  done.catch(() => undefined);
  return {
    link,
    log,
    statuses,
    credentialFile,
    done,
    waitForStatus: (match, what, { from = 0, timeoutMs } = {}) =>
      waiters.until(
        () => statuses.slice(from).find((s) => match(s.status))?.status,
        `link status ${what}`,
        timeoutMs,
      ),
    async stop() {
      abort.abort();
      await done.catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
