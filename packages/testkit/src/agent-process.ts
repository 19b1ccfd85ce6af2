/**
 * Runs the real `nbfleet-agent` CLI as separate processes, the way an operator would, and the
 * small HTTP/TLS probes the tests assert with.
 */
import { type ChildProcess, spawn } from "node:child_process";
import tls from "node:tls";
import { stopChild, tsxArgs } from "./processes.js";
import { agentMain, repoRoot } from "./repo.js";

export interface UpSummary {
  how: "started" | "adopted";
  url: string;
  pid: number;
  fingerprintSha256: string;
  health: string;
  dataDir: string;
}

export interface RunningAgent {
  process: ChildProcess;
  summary: UpSummary;
  stderr: () => string;
}

/** How to run the agent: from source under tsx by default, or e.g. `[node, bundle.mjs]`. */
export type AgentLauncher = string[];
const SOURCE_LAUNCHER: AgentLauncher = [process.execPath, ...tsxArgs(agentMain)];

function spawnAgent(args: string[], launcher: AgentLauncher = SOURCE_LAUNCHER): ChildProcess {
  return spawn(launcher[0]!, [...launcher.slice(1), ...args], {
    cwd: repoRoot,
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
}

/** `nbfleet-agent up … --json`, resolved with its start-up summary once it supervises. */
export function startAgent(
  dataDir: string,
  port: number,
  options: { password?: string; args?: string[]; launcher?: AgentLauncher } = {},
) {
  const args = ["up", "--data-dir", dataDir, "--port", String(port), "--ip", "127.0.0.1", "--json"];
  if (options.password !== undefined) args.push("--password-stdin");
  const child = spawnAgent([...args, ...(options.args ?? [])], options.launcher);
  if (options.password !== undefined) child.stdin!.end(`${options.password}\n`);
  else child.stdin!.end();
  let stdout = "";
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  return new Promise<RunningAgent>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const line = stdout.split("\n").find((l) => l.startsWith("{"));
      if (line) resolve({ process: child, summary: JSON.parse(line) as UpSummary, stderr: () => stderr });
    });
    child.once("exit", (code) => reject(new AgentExit(code ?? -1, stderr)));
  });
}

export class AgentExit extends Error {
  constructor(
    readonly code: number,
    readonly stderr: string,
  ) {
    super(`agent exited with ${code}: ${stderr}`);
  }
}

/** Runs one CLI command to completion. */
export function agentCli(
  args: string[],
  input?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawnAgent(args);
  child.stdin!.end(input ?? "");
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr!.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise((resolve) =>
    child.once("exit", (code) => resolve({ code: code ?? -1, stdout, stderr })),
  );
}

export async function agentJson<T = Record<string, unknown>>(args: string[], input?: string): Promise<T> {
  const result = await agentCli([...args, "--json"], input);
  if (result.code !== 0 && result.code !== 3)
    throw new Error(`agent ${args.join(" ")} failed (${result.code}): ${result.stderr}`);
  return JSON.parse(result.stdout) as T;
}

export function stopAgent(agent: RunningAgent, signal: NodeJS.Signals = "SIGINT"): Promise<void> {
  return stopChild(agent.process, signal);
}

/** SHA-256 fingerprint of the certificate the server really serves. */
export function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect(
      { host: "127.0.0.1", port, rejectUnauthorized: false, servername: "localhost" },
      () => {
        resolve(socket.getPeerCertificate().fingerprint256);
        socket.end();
      },
    );
    socket.once("error", reject);
  });
}

/** Logs in through the notebook's own form: GET /login for the _xsrf cookie, POST the password. */
export async function login(port: number, password: string, baseUrl = "/"): Promise<number> {
  const { Agent, request } = await import("undici");
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
  const origin = `https://127.0.0.1:${port}`;
  const page = await request(`${origin}${baseUrl}login`, { dispatcher });
  await page.body.text();
  const cookies = [page.headers["set-cookie"] ?? []].flat().map((c) => c.split(";")[0] ?? "");
  const xsrf = cookies.find((c) => c.startsWith("_xsrf="))?.slice("_xsrf=".length);
  if (!xsrf) throw new Error("the login page set no _xsrf cookie");
  const response = await request(`${origin}${baseUrl}login?next=${encodeURIComponent(`${baseUrl}tree`)}`, {
    method: "POST",
    dispatcher,
    headers: { "content-type": "application/x-www-form-urlencoded", cookie: cookies.join("; ") },
    body: new URLSearchParams({ _xsrf: xsrf, password }).toString(),
  });
  await response.body.text();
  await dispatcher.close();
  return response.statusCode;
}
