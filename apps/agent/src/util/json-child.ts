/**
 * Runs a short-lived child of the agent that answers with one JSON object on stdout
 * (`{ok: true, …}` or `{ok: false, code, message, details?}`), for work kept out of the
 * long-lived agent (certificates, ACME). Its output is bounded: a child that writes more than
 * `MAX_OUTPUT_BYTES` is stopped, and its answer refused.
 */
import { spawn } from "node:child_process";
import { AgentError, type AgentErrorCode, AgentErrorCodes } from "../errors.js";

const MAX_OUTPUT_BYTES = 1024 * 1024;

export type ChildAnswer<T> =
  | ({ ok: true } & T)
  | { ok: false; code: string; message: string; details?: Record<string, unknown> };

export interface JsonChildResult<T> {
  /** The parsed answer, or undefined when there was none (or it was not JSON). */
  answer: ChildAnswer<T> | undefined;
  /** How the child ended, for a message: "exited with code 1", "was killed by SIGTERM". */
  how: string;
  stderr: string;
}

/**
 * Starts `command` (argv), writes `input` to its stdin when given, and waits for it to end (at
 * most `timeoutMs`; then it is killed). An answer with a known agent error code is thrown as that
 * AgentError; otherwise the caller decides what a missing or failed answer means.
 */
export async function runJsonChild<T>(
  command: string[],
  options: { input?: string; timeoutMs: number },
): Promise<JsonChildResult<T>> {
  const child = spawn(command[0]!, command.slice(1), {
    stdio: [options.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    timeout: options.timeoutMs,
  });
  let stdout = "";
  let stderr = "";
  let overflow = false;
  const take = (chunk: string, into: "stdout" | "stderr") => {
    if (stdout.length + stderr.length + chunk.length > MAX_OUTPUT_BYTES) {
      overflow = true;
      child.kill("SIGKILL");
      return;
    }
    if (into === "stdout") stdout += chunk;
    else stderr += chunk;
  };
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => take(chunk, "stdout"));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => take(chunk, "stderr"));
  if (options.input !== undefined) {
    child.stdin!.on("error", () => undefined); // a child that died early shows in its exit instead
    child.stdin!.end(options.input);
  }
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolve, reject) => {
      child.once("error", reject);
      child.once("close", (code, signal) => resolve({ code, signal }));
    },
  );
  const how = overflow
    ? `wrote more than ${MAX_OUTPUT_BYTES} bytes and was stopped`
    : exit.signal
      ? `was killed by ${exit.signal}`
      : `exited with code ${exit.code}`;
  let answer: ChildAnswer<T> | undefined;
  try {
    answer = overflow ? undefined : (JSON.parse(stdout) as ChildAnswer<T>);
  } catch {
    answer = undefined;
  }
  if (answer && !answer.ok && answer.code in AgentErrorCodes)
    throw new AgentError(answer.code as AgentErrorCode, answer.message, answer.details ?? {});
  return { answer, how, stderr };
}
