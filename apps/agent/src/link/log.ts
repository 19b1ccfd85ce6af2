/**
 * What the link says about itself. Messages are for a person and never carry a secret (no
 * token, no credential, no Authorization header).
 */
export type LinkLogLevel = "info" | "warn" | "error";

export interface LinkLog {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** One line per message on stderr, the way `nbfleet-agent up` prints its events. */
export function stderrLinkLog(write: (line: string) => void = (line) => process.stderr.write(line)): LinkLog {
  const line = (level: LinkLogLevel) => (message: string) =>
    write(`${new Date().toISOString()} ${level} link: ${message}\n`);
  return { info: line("info"), warn: line("warn"), error: line("error") };
}

/** Every message to each log (e.g. stderr and the agent's own pino log, which fits LinkLog). */
export function teeLinkLog(...logs: LinkLog[]): LinkLog {
  return {
    info: (message) => logs.forEach((log) => log.info(message)),
    warn: (message) => logs.forEach((log) => log.warn(message)),
    error: (message) => logs.forEach((log) => log.error(message)),
  };
}
