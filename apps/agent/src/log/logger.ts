/**
 * The agent's own log: pino JSON lines in DIR/logs/agent.log, capped copytruncate-style like
 * the notebook's (the file is opened for append, so truncation is safe).
 */
import pino, { type Logger } from "pino";
import { capLogFile } from "../supervisor/log-file.js";

export type AgentLogger = Logger;

const CAP_EVERY_MS = 5000;

export function createAgentLogger(file: string, maxBytes: number): { log: AgentLogger; close: () => void } {
  const destination = pino.destination({ dest: file, append: true, mkdir: true, sync: false });
  const log = pino({ base: { component: "agent" }, timestamp: pino.stdTimeFunctions.isoTime }, destination);
  const timer = setInterval(
    () => void capLogFile(file, maxBytes).then((capped) => capped && destination.reopen()),
    CAP_EVERY_MS,
  );
  timer.unref();
  return {
    log,
    close: () => {
      clearInterval(timer);
      destination.flushSync();
    },
  };
}
