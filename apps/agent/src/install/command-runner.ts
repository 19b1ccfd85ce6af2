/**
 * How the agent runs an external command and gets its whole result back. One seam, so unit
 * tests can inject a runner and everything else uses the real `spawn`.
 */
import { spawn } from "node:child_process";

export interface CommandResult {
  /** Exit code; -1 when the process could not start or was killed by a signal. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  /** Merged over the agent's own environment. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  timeoutMs?: number;
}

export type CommandRunner = (argv: readonly string[], options?: RunOptions) => Promise<CommandResult>;

/** Keeps the tail: install logs can be long and only their end explains a failure. */
const MAX_CAPTURE = 1024 * 1024;

function capture(): { push(chunk: Buffer): void; text(): string } {
  let text = "";
  return {
    push(chunk) {
      text += chunk.toString("utf8");
      if (text.length > MAX_CAPTURE) text = text.slice(text.length - MAX_CAPTURE);
    },
    text: () => text,
  };
}

export const spawnRunner: CommandRunner = (argv, options = {}) =>
  new Promise((resolve) => {
    const [command, ...args] = argv;
    if (!command) {
      resolve({ code: -1, stdout: "", stderr: "empty command" });
      return;
    }
    const stdout = capture();
    const stderr = capture();
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
      timeout: options.timeoutMs,
      windowsHide: true,
    });
    child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => stderr.push(chunk));
    let settled = false;
    child.on("error", (error) => {
      if (settled) return;
      settled = true;
      resolve({ code: -1, stdout: stdout.text(), stderr: `${stderr.text()}${error.message}` });
    });
    child.on("close", (code, signal) => {
      if (settled) return;
      settled = true;
      const note = signal ? `\nkilled by ${signal}` : "";
      resolve({ code: code ?? -1, stdout: stdout.text(), stderr: stderr.text() + note });
    });
  });
