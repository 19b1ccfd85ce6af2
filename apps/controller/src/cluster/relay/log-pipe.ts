/**
 * One relayed log response: the owner's status line headers and body, passed on as they come.
 * `pipe` writes no faster than the client reads, so a slow client holds the owner's response
 * in its TCP window and the owner's own cut-off for followers that stop reading applies there.
 * If the owner goes away mid-stream, an NDJSON follow ends with the `{"end"}` record the
 * owner would have written for a lost agent.
 */
import type { IncomingMessage } from "node:http";
import type { CommandError } from "@nbfleet/shared";
import type { FastifyReply } from "fastify";

const PASSED_HEADERS = ["content-type", "content-length", "cache-control", "x-accel-buffering"];

/** Ends a relayed response here (the owner's dropped), NDJSON with an `{"end"}` record. */
export type EndRelayedLogs = (error: CommandError) => void;

export function pipeLogs(
  response: IncomingMessage,
  reply: FastifyReply,
  track: (close: () => void) => () => void,
): EndRelayedLogs {
  reply.hijack();
  const raw = reply.raw;
  const headers: Record<string, string> = {};
  for (const name of PASSED_HEADERS) {
    const value = response.headers[name];
    if (typeof value === "string") headers[name] = value;
  }
  raw.writeHead(200, headers);
  const ndjson = headers["content-type"]?.startsWith("application/x-ndjson") === true;
  raw.flushHeaders();
  const untrack = track(() => {
    response.destroy();
    raw.destroy();
  });
  response.pipe(raw);
  // An end record may only follow a whole line.
  let atLineStart = true;
  response.on("data", (chunk: Buffer) => {
    atLineStart = chunk.at(-1) === 0x0a;
  });
  raw.on("close", () => {
    untrack();
    response.destroy();
  });
  response.on("error", () => undefined);
  response.on("close", () => {
    untrack();
    if (response.complete || raw.writableEnded) return;
    response.unpipe(raw);
    // A whole answer cut short must not look complete.
    if (headers["content-length"] !== undefined) {
      raw.destroy();
      return;
    }
    if (ndjson) {
      const message = "the replica holding the agent's connection went away; the log stream ended with it";
      raw.write(`${JSON.stringify({ end: { code: "NBF_AGENT_NOT_CONNECTED", message } })}\n`);
    }
    raw.end();
  });
  return (error) => {
    if (raw.writableEnded) return;
    response.unpipe(raw);
    if (ndjson && atLineStart) raw.write(`${JSON.stringify({ end: error })}\n`);
    raw.end();
    response.destroy();
  };
}
