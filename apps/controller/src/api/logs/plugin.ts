import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
/**
 * `GET /v1/vms/{name}/logs?lines=N&follow=1&source=notebook|agent&format=text|ndjson`: the last
 * lines of the notebook server's (or the agent's) log, as plain text or NDJSON (`{"line": …}`
 * per line; `Accept: application/x-ndjson` picks it too). With `follow=1` the response stays
 * open and new lines keep coming — across notebook restarts and log capping, which the agent
 * handles — until the client goes away or the agent's connection ends; then, in NDJSON, a last
 * `{"end": {"code", "message"}}` record says why (also when the token or console session that
 * opened it is revoked, auth/principal-streams.ts). With several replicas, a VM whose agent another
 * replica holds is served by that replica through the stream relay (cluster/relay).
 */
import { type CommandError, LogSource } from "@nbfleet/shared";
import { type Static, Type } from "@sinclair/typebox";
import type { FastifyReply, FastifyRequest } from "fastify";
import {
  type PrincipalStreams,
  type StreamOwner,
  type TrackedStream,
  revocationError,
} from "../../auth/principal-streams.js";
import { NbfError } from "../../errors.js";
import type { LogStream, LogStreamService } from "../../logs/log-streams.js";
import { MAX_UNSENT_BYTES } from "../../stream-limits.js";
import { Errors, NameParams } from "../schemas.js";
import { KeptLines } from "./kept-lines.js";

const Flag = Type.Union([Type.Literal("1"), Type.Literal("0"), Type.Literal("true"), Type.Literal("false")]);
export const LogsQuery = Type.Object(
  {
    lines: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000, default: 100 })),
    follow: Type.Optional(Flag),
    source: Type.Optional(LogSource),
    format: Type.Optional(Type.Union([Type.Literal("text"), Type.Literal("ndjson")])),
  },
  { additionalProperties: false },
);

/** How long the agent may take to answer the open, and to send a whole tail. */
const FIRST_ANSWER_MS = 10_000;
const WHOLE_TAIL_MS = 30_000;

export const logsPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { logs, relay, streams } = app.nbfleet;
  const serve = serveLogs(logs, streams);

  app.get(
    "/v1/vms/:name/logs",
    {
      config: { role: "viewer" },
      schema: {
        tags: ["vms"],
        summary: "The notebook's (or the agent's) log: the last lines, and with follow=1 every new one",
        params: NameParams,
        querystring: LogsQuery,
        response: {
          200: Type.String({
            description: "lines as text/plain, or NDJSON records {line} and at most one {end}",
          }),
          ...Errors,
        },
      },
    },
    async (request, reply) => {
      const peer = await relay.peerFor(request.params.name);
      if (!peer) return serve(request, reply);
      // The owner ends the follow for a revoked token; only this replica knows the console session.
      const tracked = trackFollow(streams, request, reply);
      const endRelayed = await relay.relayLogs(peer, request, reply);
      tracked?.endWith((revoked) => endRelayed(revocationError(revoked)));
    },
  );
};

export interface LogsRequest extends StreamOwner {
  params: Static<typeof NameParams>;
  query: Static<typeof LogsQuery>;
  headers: FastifyRequest["headers"];
}

const isFollow = (query: Static<typeof LogsQuery>) => query.follow === "1" || query.follow === "true";

/**
 * A follow is registered under its token and console session until its response closes; one
 * revoked just before is refused.
 */
function trackFollow(
  streams: PrincipalStreams,
  request: LogsRequest,
  reply: FastifyReply,
): TrackedStream | null {
  if (!isFollow(request.query)) return null;
  const tracked = streams.track(request);
  reply.raw.once("close", () => tracked.release());
  tracked.refuseIfRevoked();
  return tracked;
}

/** Serves a log request from an agent connected to this replica. */
export function serveLogs(logs: LogStreamService, streams: PrincipalStreams) {
  return async (request: LogsRequest, reply: FastifyReply) => {
    const { name } = request.params;
    const { lines = 100, source = "notebook" } = request.query;
    const follow = isFollow(request.query);
    const tracked = trackFollow(streams, request, reply);
    const ndjson =
      request.query.format === "ndjson" ||
      (request.query.format === undefined && /application\/(x-)?ndjson/.test(request.headers.accept ?? ""));
    const format = (batch: string[]) =>
      ndjson
        ? batch.map((line) => `${JSON.stringify({ line })}\n`).join("")
        : batch.map((line) => `${line}\n`).join("");

    // Lines are kept until the response is committed, then written as they come (a follower
    // that stops reading is cut off beyond MAX_UNSENT_BYTES, and so is an agent that sends more).
    const kept = new KeptLines(follow ? Number.POSITIVE_INFINITY : lines, MAX_UNSENT_BYTES);
    let overflowed = false;
    let write: ((batch: string[]) => void) | null = null;
    let finish: ((error?: CommandError) => void) | null = null;
    let answered!: () => void;
    const firstAnswer = new Promise<void>((resolve) => {
      answered = resolve;
    });
    let ended: { error?: CommandError } | null = null;
    let endedNow!: () => void;
    const endPromise = new Promise<void>((resolve) => {
      endedNow = resolve;
    });
    const stream: LogStream = await logs.open(
      { vmName: name, source, lines, follow },
      {
        lines: (batch) => {
          if (write) write(batch);
          else if (!overflowed && !kept.add(batch)) {
            overflowed = true;
            endedNow();
          }
          answered();
        },
        end: (error) => {
          ended = error ? { error } : {};
          if (finish) finish(error);
          answered();
          endedNow();
        },
      },
    );

    const awaitAgent = async (answer: Promise<void>, ms: number, what: string) => {
      const inTime = await within(answer, ms);
      if (inTime && !overflowed) return;
      stream.close();
      if (overflowed) throw tooMuch(name, source, lines);
      throw new NbfError("NBF_AGENT_NO_ANSWER", { name, what, seconds: ms / 1000 });
    };

    await awaitAgent(firstAnswer, FIRST_ANSWER_MS, "a log request");
    const failedEarly = (ended as { error?: CommandError } | null)?.error;
    if (failedEarly && kept.count === 0) throw refusal(name, source, failedEarly);
    const contentType = ndjson ? "application/x-ndjson; charset=utf-8" : "text/plain; charset=utf-8";

    if (!follow) {
      await awaitAgent(endPromise, WHOLE_TAIL_MS, "a log tail");
      const error = (ended as { error?: CommandError } | null)?.error;
      if (error) throw refusal(name, source, error);
      return reply.type(contentType).send(format(kept.take()));
    }

    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      "content-type": contentType,
      "cache-control": "no-cache, no-transform",
      "x-accel-buffering": "no",
    });
    // The client learns at once that the follow started, even before the first new line.
    raw.flushHeaders();
    const closeResponse = (error?: CommandError) => {
      if (raw.writableEnded) return;
      if (error && ndjson)
        raw.write(`${JSON.stringify({ end: { code: error.code, message: error.message } })}\n`);
      raw.end();
    };
    write = (batch) => {
      if (raw.writableEnded || batch.length === 0) return;
      raw.write(format(batch));
      if (raw.writableLength > MAX_UNSENT_BYTES) {
        stream.close();
        raw.destroy();
      }
    };
    finish = closeResponse;
    raw.on("close", () => stream.close());
    write(kept.take());
    if (ended) closeResponse((ended as { error?: CommandError }).error);
    tracked?.endWith((revoked) => {
      stream.close();
      closeResponse(revocationError(revoked));
    });
  };
}

function tooMuch(name: string, source: string, lines: number): NbfError {
  const cap = `${MAX_UNSENT_BYTES / (1024 * 1024)} MiB`;
  return new NbfError("NBF_LOGS_FAILED", {
    name,
    source,
    reason: `it sent more than ${cap} for the last ${lines} lines (the most one answer holds); the stream was ended, ask for fewer lines`,
  });
}

function refusal(name: string, source: string, error: CommandError): NbfError {
  if (error.code === "NBF_AGENT_NOT_CONNECTED") {
    return new NbfError("NBF_AGENT_NOT_CONNECTED", {
      name,
      lastSeenAt: "just now",
      what: "reading its logs",
    });
  }
  return new NbfError("NBF_LOGS_FAILED", { name, source, reason: `${error.message} [${error.code}]` });
}

async function within(promise: Promise<void>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
