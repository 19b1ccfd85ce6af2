/**
 * The local control socket of a running agent (DIR/run/agent.sock, mode 0600): HTTP over a
 * unix socket, so `nbfleet-agent status|restart|password …` in another process reach the one
 * agent that owns the data directory.
 *
 *   GET  /state            → AgentState
 *   GET  /events?limit=N   → AgentEvent[]
 *   POST /command          ← CommandMessage; → NDJSON: {"progress": "…"}* then {"outcome": …}
 */
import { chmod, rm } from "node:fs/promises";
import http from "node:http";
import { CommandMessage, compileValidator } from "@nbfleet/shared";
import type { AgentCore } from "../core.js";
import { AgentError } from "../errors.js";
import type { EventLog } from "../events/event-log.js";
import { isAgentRunning } from "./client.js";

const commandValidator = compileValidator(CommandMessage, "command");
const MAX_BODY = 64 * 1024;

export async function serveControlSocket(
  socketPath: string,
  core: AgentCore,
  events: EventLog,
): Promise<http.Server> {
  if (await isAgentRunning(socketPath)) {
    throw new AgentError(
      "NBF_AGENT_ALREADY_RUNNING",
      `an agent is already running for this data directory (${socketPath})`,
    );
  }
  await rm(socketPath, { force: true });
  const server = http.createServer((req, res) => {
    void route(req, res, core, events).catch((error) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { code: "NBF_INTERNAL", message: String(error) } }));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(socketPath, resolve);
  });
  await chmod(socketPath, 0o600);
  return server;
}

async function route(req: http.IncomingMessage, res: http.ServerResponse, core: AgentCore, events: EventLog) {
  const url = new URL(req.url ?? "/", "http://agent");
  if (req.method === "GET" && url.pathname === "/state") return json(res, 200, core.state());
  if (req.method === "GET" && url.pathname === "/events") {
    return json(res, 200, await events.read(Number(url.searchParams.get("limit") ?? 100)));
  }
  if (req.method === "POST" && url.pathname === "/command") {
    const body = await readBody(req);
    let command: CommandMessage;
    try {
      command = commandValidator.check(JSON.parse(body));
    } catch (error) {
      return json(res, 400, { error: { code: "NBF_INVALID_INPUT", message: (error as Error).message } });
    }
    res.writeHead(200, { "content-type": "application/x-ndjson" });
    const outcome = await core.execute(command, (message) =>
      res.write(`${JSON.stringify({ progress: message })}\n`),
    );
    res.end(`${JSON.stringify({ outcome })}\n`);
    return;
  }
  json(res, 404, {
    error: { code: "NBF_NOT_FOUND", message: `${req.method} ${url.pathname} is not a control route` },
  });
}

function json(res: http.ServerResponse, status: number, value: unknown) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(value));
}

async function readBody(req: http.IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY)
      throw new AgentError("NBF_INVALID_INPUT", `control request larger than ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString("utf8");
}
