/**
 * Failed writes to the agent's own files (event log, agent log, restart count, pid record, log
 * caps). A full disk must not stop the agent, so every write path reports here instead of
 * throwing: failures are counted per kind of write, reported at most once a minute each (a full
 * disk fails every write, and each report is itself a write), and remembered until a write of
 * that kind succeeds again, which is reported once too. The `resources` check shows what is
 * still failing.
 */

/** What every write path of the agent tells about its writes. */
export interface WriteReporter {
  failed(what: string, file: string, error: unknown): void;
  succeeded(what: string): void;
}

/** A kind of write that keeps failing. */
export interface WriteProblem {
  what: string;
  file: string;
  /** The errno code (`ENOSPC`, `EDQUOT`, …), or `EUNKNOWN`. */
  code: string;
  message: string;
  since: string;
  failures: number;
}

export interface WriteReport {
  level: "warn" | "info";
  kind: "storage.write_failed" | "storage.write_resumed";
  message: string;
  data: Record<string, unknown>;
}

export const WRITE_REPORT_EVERY_MS = 60_000;

interface Open extends WriteProblem {
  reportedAt: number;
  unreported: number;
}

export class WriteFailures implements WriteReporter {
  private readonly open = new Map<string, Open>();

  constructor(
    private readonly report: (report: WriteReport) => void,
    private readonly everyMs = WRITE_REPORT_EVERY_MS,
    private readonly now: () => number = Date.now,
  ) {}

  failed(what: string, file: string, error: unknown): void {
    const now = this.now();
    let problem = this.open.get(what);
    if (!problem) {
      problem = {
        what,
        file,
        code: "EUNKNOWN",
        message: "",
        since: new Date(now).toISOString(),
        failures: 0,
        reportedAt: Number.NEGATIVE_INFINITY,
        unreported: 0,
      };
      this.open.set(what, problem);
    }
    problem.file = file;
    problem.code = errorCodeOf(error);
    problem.message = error instanceof Error ? error.message : String(error);
    problem.failures += 1;
    problem.unreported += 1;
    if (now - problem.reportedAt < this.everyMs) return;
    const count = problem.unreported;
    problem.reportedAt = now;
    problem.unreported = 0;
    this.report({
      level: "warn",
      kind: "storage.write_failed",
      message: `cannot write the ${what} (${file}): ${problem.message}${count > 1 ? ` (${count} failures since the last report)` : ""}`,
      data: { what, file, code: problem.code, failures: problem.failures, since: problem.since },
    });
  }

  succeeded(what: string): void {
    const problem = this.open.get(what);
    if (!problem) return;
    this.open.delete(what);
    this.report({
      level: "info",
      kind: "storage.write_resumed",
      message: `writing the ${what} works again after ${problem.failures} failed attempt(s) since ${problem.since}`,
      data: { what, file: problem.file, failures: problem.failures, since: problem.since },
    });
  }

  problems(): WriteProblem[] {
    return [...this.open.values()].map(({ what, file, code, message, since, failures }) => ({
      what,
      file,
      code,
      message,
      since,
      failures,
    }));
  }
}

/** `error.code`, or the code of its cause (a wrapped errno error). */
export function errorCodeOf(error: unknown): string {
  for (let e: unknown = error, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") return code;
  }
  return "EUNKNOWN";
}

/** A reporter that drops everything (for callers without one). */
export const ignoreWrites: WriteReporter = { failed: () => {}, succeeded: () => {} };
