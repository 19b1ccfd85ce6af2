/**
 * What the agent process does with errors nobody caught. The agent supervises a notebook and
 * holds the controller link, so it keeps running wherever that is safe:
 *
 * - an unhandled promise rejection is logged and the process goes on (Node's default ends it);
 * - an uncaught exception carrying an I/O errno code (`ENOSPC`, `EIO`, `EPIPE`, …: the disk or
 *   a pipe failed, not the agent's own logic) is logged and the process goes on;
 * - any other uncaught exception is a bug that may have left state half-changed: it is logged
 *   and the process exits with code 70, so its launcher starts it again (the notebook server
 *   runs on and is re-adopted);
 * - write errors of stdout and stderr (a closed pipe, a full disk under a redirect) are counted,
 *   never thrown.
 *
 * Reports go to stderr and to the sinks `onProcessTrouble` registered (the agent's log), at most
 * once per REPORT_EVERY_MS per kind, with the count of those left out.
 */

export const EXIT_CODE_INTERNAL = 70;
export const REPORT_EVERY_MS = 10_000;

/** Errno codes of failed I/O: the process itself is still sound. */
const IO_CODES = new Set([
  "ENOSPC",
  "EDQUOT",
  "EFBIG",
  "EIO",
  "EROFS",
  "EPIPE",
  "ECONNRESET",
  "EMFILE",
  "ENFILE",
  "EAGAIN",
  "EBADF",
]);

export type TroubleKind = "unhandled_rejection" | "uncaught_io_exception" | "fatal_exception";

export interface Trouble {
  kind: TroubleKind;
  error: unknown;
  /** How many of this kind were not reported since the last report. */
  suppressed: number;
}

type Sink = (trouble: Trouble) => void;

const sinks = new Set<Sink>();
const lastReport = new Map<TroubleKind, { at: number; suppressed: number }>();
let installed = false;
let streamErrors = 0;

/** Adds a place troubles are reported to; returns its removal. */
export function onProcessTrouble(sink: Sink): () => void {
  sinks.add(sink);
  return () => sinks.delete(sink);
}

/** Write errors of stdout/stderr swallowed so far. */
export function standardStreamErrors(): number {
  return streamErrors;
}

export function isIoError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && IO_CODES.has(code);
}

export function installProcessPolicy(exit: (code: number) => void = (code) => process.exit(code)): void {
  if (installed) return;
  installed = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", () => {
      streamErrors += 1;
    });
  }
  process.on("unhandledRejection", (reason) => report("unhandled_rejection", reason));
  process.on("uncaughtException", (error) => {
    if (isIoError(error)) {
      report("uncaught_io_exception", error);
      return;
    }
    report("fatal_exception", error, true);
    exit(EXIT_CODE_INTERNAL);
  });
}

function report(kind: TroubleKind, error: unknown, always = false): void {
  const now = Date.now();
  const last = lastReport.get(kind);
  if (!always && last && now - last.at < REPORT_EVERY_MS) {
    last.suppressed += 1;
    return;
  }
  const suppressed = last?.suppressed ?? 0;
  lastReport.set(kind, { at: now, suppressed: 0 });
  const what =
    kind === "unhandled_rejection"
      ? "unhandled rejection (the agent goes on)"
      : kind === "uncaught_io_exception"
        ? "uncaught I/O error (the agent goes on)"
        : `uncaught exception (the agent exits with ${EXIT_CODE_INTERNAL})`;
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  const more = suppressed > 0 ? ` [${suppressed} more since the last report]` : "";
  try {
    process.stderr.write(`nbfleet-agent: ${what}: ${detail}${more}\n`);
  } catch {
    streamErrors += 1;
  }
  for (const sink of sinks) {
    try {
      sink({ kind, error, suppressed });
    } catch {
      // A sink that fails (its own disk is full) must not turn one report into another.
    }
  }
}
