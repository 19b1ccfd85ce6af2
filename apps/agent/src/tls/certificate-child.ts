/**
 * Certificates are made in a short-lived child process: the X.509 library (with
 * reflect-metadata) is large and V8 keeps the heap it grew to, so the long-lived agent never
 * loads it. The child is the agent itself, started again by the CLI entry with a hidden first
 * argument (in the bundled artifact: the same `nbfleet-agent.mjs`). The key pair is created in
 * the child and comes back over a pipe, so the private key still never leaves the guest.
 */
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { AgentError } from "../errors.js";
import { type ChildAnswer as JsonChildAnswer, runJsonChild } from "../util/json-child.js";
import type { CertificatePair, GenerateOptions } from "./generate.js";

/** The hidden first argument that makes the agent's entry a certificate maker. */
export const CERTIFICATE_CHILD_ARG = "__nbfleet-make-certificate";
const CHILD_TIMEOUT_MS = 60_000;

/** How to start this agent again: `[node, ...node flags, entry]`; set by the CLI entry. */
let agentCommand: string[] | null = null;

export function setAgentCommand(command: string[]): void {
  agentCommand = command;
}

/** The command line of the running entry, without debugger and profiler flags. */
export function currentAgentCommand(): string[] {
  const flags = process.execArgv.filter(
    (flag) => !/^--(inspect|debug|cpu-prof|heap-prof|heapsnapshot)/.test(flag),
  );
  return [process.execPath, ...flags, process.argv[1]!];
}

/** How to start this agent's CLI again (its entry as set, or the source under tsx), for other children. */
export function agentCommandLine(): string[] {
  return agentCommand ?? sourceAgentCommand();
}

/** Used as a library (tests, the bench's in-process helpers): the entry from source, under tsx. */
function sourceAgentCommand(): string[] {
  const tsx = createRequire(import.meta.url).resolve("tsx");
  return [process.execPath, "--import", tsx, fileURLToPath(new URL("../cli/main.ts", import.meta.url))];
}

interface ChildRequest {
  hostnames?: string[];
  ips?: string[];
  days?: number;
  now?: string;
}

type ChildAnswer = JsonChildAnswer<CertificatePair>;

/** `generateSelfSigned` in a child process. */
export async function generateInChild(options: GenerateOptions = {}): Promise<CertificatePair> {
  const command = agentCommand ?? sourceAgentCommand();
  const request: ChildRequest = {
    ...(options.hostnames ? { hostnames: options.hostnames } : {}),
    ...(options.ips ? { ips: options.ips } : {}),
    ...(options.days !== undefined ? { days: options.days } : {}),
    ...(options.now ? { now: options.now.toISOString() } : {}),
  };
  const { answer, how, stderr } = await runJsonChild<CertificatePair>([...command, CERTIFICATE_CHILD_ARG], {
    input: JSON.stringify(request),
    timeoutMs: CHILD_TIMEOUT_MS,
  });
  if (answer?.ok) return { certPem: answer.certPem, keyPem: answer.keyPem };
  throw new Error(
    `the certificate maker (${command.at(-1)}) ${how}: ${answer?.message ?? (stderr.trim() || "no answer")}`,
  );
}

/** The child's side: one request as JSON on stdin, one answer as JSON on stdout. */
export async function runCertificateChild(): Promise<void> {
  let answer: ChildAnswer;
  try {
    const request = JSON.parse(await readStdin()) as ChildRequest;
    const { generateSelfSigned } = await import("./generate.js");
    const pair = await generateSelfSigned({
      ...(request.hostnames ? { hostnames: request.hostnames } : {}),
      ...(request.ips ? { ips: request.ips } : {}),
      ...(request.days !== undefined ? { days: request.days } : {}),
      ...(request.now ? { now: new Date(request.now) } : {}),
    });
    answer = { ok: true, ...pair };
  } catch (error) {
    answer = {
      ok: false,
      code: error instanceof AgentError ? error.code : "NBF_INTERNAL",
      message: error instanceof Error ? error.message : String(error),
      ...(error instanceof AgentError ? { details: error.details } : {}),
    };
  }
  await new Promise<void>((resolve) => process.stdout.write(JSON.stringify(answer), () => resolve()));
}

async function readStdin(): Promise<string> {
  let text = "";
  for await (const chunk of process.stdin) text += chunk;
  return text;
}
