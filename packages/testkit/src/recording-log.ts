/** A LinkLog for tests: keeps every line and lets a test wait for one. */
import type { LinkLog, LinkLogLevel } from "@nbfleet/agent";
import { Waiters } from "./waiters.js";

export interface LogLine {
  at: number;
  level: LinkLogLevel;
  message: string;
}

export class RecordingLog implements LinkLog {
  readonly lines: LogLine[] = [];
  private readonly waiters = new Waiters();

  info(message: string): void {
    this.add("info", message);
  }
  warn(message: string): void {
    this.add("warn", message);
  }
  error(message: string): void {
    this.add("error", message);
  }

  text(): string {
    return this.lines.map((l) => `${l.level} ${l.message}`).join("\n");
  }

  waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<LogLine> {
    return this.waiters.until(
      () => this.lines.find((l) => pattern.test(l.message)),
      `a log line matching ${pattern}; got:\n${this.text()}`,
      timeoutMs,
    );
  }

  private add(level: LinkLogLevel, message: string): void {
    this.lines.push({ at: Date.now(), level, message });
    this.waiters.notify();
  }
}
