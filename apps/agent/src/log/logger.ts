/**
 * The agent's own log: pino JSON lines in DIR/logs/agent.log, capped copytruncate-style like
 * the notebook's (the file is opened for append, so truncation is safe).
 *
 * A failed write (a full disk) must not end the agent: the destination's errors go to the
 * reporter instead of becoming an uncaught exception, what could not be written waits in a
 * bounded buffer (newer lines are dropped beyond it) and is tried again with the next line and
 * by the cap timer, so the log resumes by itself once the disk has room. Writes are synchronous
 * (the agent logs little): an asynchronous destination flushes itself at exit with a loop that
 * never ends while the disk is full.
 */
import pino, { type Logger } from "pino";
import { capLogFile } from "../supervisor/log-file.js";
import { type WriteReporter, ignoreWrites } from "../util/write-failures.js";

export type AgentLogger = Logger;

const CAP_EVERY_MS = 5000;
/** What the log holds in memory while its disk refuses writes. */
export const LOG_BUFFER_MAX_BYTES = 1024 * 1024;

export function createAgentLogger(
  file: string,
  maxBytes: number,
  reporter: WriteReporter = ignoreWrites,
): { log: AgentLogger; close: () => void } {
  const destination = pino.destination({
    dest: file,
    append: true,
    mkdir: true,
    sync: true,
    maxLength: LOG_BUFFER_MAX_BYTES,
  });
  let failing = false;
  let lastError: unknown = null;
  destination.on("error", (error: unknown) => {
    // pino's own listener hands each error on once more: count it once.
    if (error === lastError) return;
    lastError = error;
    failing = true;
    reporter.failed("agent log", file, error);
  });
  destination.on("write", (bytes: number) => {
    if (!failing || bytes <= 0) return;
    failing = false;
    lastError = null;
    reporter.succeeded("agent log");
  });
  const log = pino({ base: { component: "agent" }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
  const timer = setInterval(() => {
    capLogFile(file, maxBytes).then(
      (capped) => {
        if (capped) destination.reopen();
        reporter.succeeded("agent log cap");
      },
      (error: unknown) => reporter.failed("agent log cap", file, error),
    );
    // A full buffer drops new lines without trying the disk: an empty write tries it again.
    if (failing) destination.write("");
  }, CAP_EVERY_MS);
  timer.unref();
  return {
    log,
    close: () => {
      clearInterval(timer);
      // Nothing waits unless the disk refused it, and then flushing would retry forever.
      if (failing) return;
      try {
        destination.flushSync();
      } catch (error) {
        reporter.failed("agent log", file, error);
      }
    },
  };
}
