import { randomUUID } from "node:crypto";
/** Talks to the running agent of a data directory over its control socket. */
import http from "node:http";
import {
  type AgentEvent,
  type AgentState,
  type CommandMessage,
  type CommandName,
  type CommandParamsOf,
  PROTOCOL_VERSION,
} from "@nbfleet/shared";
import type { CommandOutcome } from "../core.js";
import { AgentError } from "../errors.js";

export async function isAgentRunning(socketPath: string): Promise<boolean> {
  try {
    await request(socketPath, "GET", "/state");
    return true;
  } catch {
    return false;
  }
}

export async function fetchState(socketPath: string): Promise<AgentState> {
  return JSON.parse(await request(socketPath, "GET", "/state")) as AgentState;
}

export async function fetchEvents(socketPath: string, limit: number): Promise<AgentEvent[]> {
  return JSON.parse(await request(socketPath, "GET", `/events?limit=${limit}`)) as AgentEvent[];
}

export async function sendCommand<N extends CommandName>(
  socketPath: string,
  name: N,
  params: CommandParamsOf<N>,
  onProgress: (message: string) => void = () => {},
): Promise<CommandOutcome> {
  const command = { v: PROTOCOL_VERSION, id: randomUUID(), type: "command", name, params } as CommandMessage;
  const body = await request(socketPath, "POST", "/command", JSON.stringify(command));
  let outcome: CommandOutcome | undefined;
  for (const line of body.split("\n").filter(Boolean)) {
    const message = JSON.parse(line) as {
      progress?: string;
      outcome?: CommandOutcome;
      error?: CommandOutcome;
    };
    if (message.progress) onProgress(message.progress);
    if (message.outcome) outcome = message.outcome;
    if (message.error) outcome = { ok: false, error: message.error as never };
  }
  if (!outcome)
    throw new AgentError(
      "NBF_AGENT_NOT_RUNNING",
      "the agent closed the control connection without an answer",
    );
  return outcome;
}

function request(socketPath: string, method: string, path: string, body?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { socketPath, method, path, headers: { "content-type": "application/json" } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if ((res.statusCode ?? 500) >= 400) {
            const error = safeError(text);
            reject(new AgentError("NBF_INVALID_INPUT", error ?? `agent answered ${res.statusCode}`));
          } else resolve(text);
        });
      },
    );
    req.on("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "ENOENT" || error.code === "ECONNREFUSED") {
        reject(
          new AgentError(
            "NBF_AGENT_NOT_RUNNING",
            `no agent is running for this data directory (nothing answers on ${socketPath}); start one with 'nbfleet-agent up'`,
          ),
        );
      } else reject(error);
    });
    req.end(body);
  });
}

function safeError(text: string): string | undefined {
  try {
    return (JSON.parse(text) as { error?: { message?: string } }).error?.message;
  } catch {
    return undefined;
  }
}
