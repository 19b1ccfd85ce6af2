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

const REPEAT_WINDOW_MS = 60_000;

/** Logs, folding a failure repeated every few hundred ms into one line a minute. */
export class FoldingLog {
  private last: { message: string; at: number; repeats: number } | null = null;

  constructor(private readonly log: LinkLog) {}

  say(level: LinkLogLevel, message: string): void {
    const { last } = this;
    const now = Date.now();
    if (last && last.message === message && now - last.at < REPEAT_WINDOW_MS) {
      last.repeats++;
      return;
    }
    this.flush();
    this.last = { message, at: now, repeats: 0 };
    this.log[level](message);
  }

  /** Says how often the last message repeated, and starts afresh. */
  flush(): void {
    if (this.last && this.last.repeats > 0) {
      this.log.info(`(the last message repeated ${this.last.repeats} more times)`);
    }
    this.last = null;
  }
}
