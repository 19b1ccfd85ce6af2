/**
 * `GET /v1/events`: the fleet's events as Server-Sent Events, each with its id (`id:`), so a
 * client that reconnects sends `Last-Event-ID` (or `after=<event id>`) and is first replayed,
 * page by page from the store, every stored event after that one; then live events follow.
 * Filters: `vm`, `kind` (prefix).
 *
 * Backpressure: each stream may have `eventStreamMaxBufferBytes` waiting for its reader. A
 * reader further behind is disconnected (it resumes with `Last-Event-ID` and misses nothing);
 * the replay waits for the reader between pages, and ends a reader that takes nothing for
 * STALL_TIMEOUT_MS.
 *
 * A stream ends when the token or console session that opened it is revoked (auth/principal-streams.ts).
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "@sinclair/typebox";
import { revocationError } from "../../auth/principal-streams.js";
import type { FleetEvent } from "../../events/bus.js";
import { eventIdBound } from "../../store/ids.js";
import { Errors } from "../schemas.js";
import { SseWriter } from "./sse-writer.js";

const HEARTBEAT_MS = 15_000;
const REPLAY_PAGE = 500;
/** Live events kept per stream while it replays; beyond, the replay reads them from the store. */
const BACKLOG_LIMIT = 5000;
const STALL_TIMEOUT_MS = 30_000;
/** What an EventSource waits before it reconnects. */
const RETRY_MS = 1000;

const EventsQuery = Type.Object(
  {
    vm: Type.Optional(Type.String({ minLength: 1, maxLength: 63 })),
    kind: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: "only kinds starting with this" }),
    ),
    after: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, description: "replay stored events after this id" }),
    ),
  },
  { additionalProperties: false },
);

export const eventsPlugin: FastifyPluginAsyncTypebox = async (app) => {
  const { store, eventFeed: feed, settings, streams } = app.nbfleet;

  app.get(
    "/v1/events",
    {
      config: { role: "viewer" },
      schema: {
        tags: ["events"],
        summary: "Stream fleet events (text/event-stream)",
        querystring: EventsQuery,
        headers: Type.Object({ "last-event-id": Type.Optional(Type.String({ maxLength: 128 })) }),
        response: Errors,
      },
    },
    async (request, reply) => {
      const { vm, kind } = request.query;
      const after = request.headers["last-event-id"] ?? request.query.after;
      const wanted = (event: FleetEvent) =>
        (vm === undefined || event.vmName === vm) && (kind === undefined || event.kind.startsWith(kind));

      const tracked = streams.track(request);
      reply.raw.once("close", () => tracked.release());
      tracked.refuseIfRevoked();
      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache, no-transform",
        connection: "keep-alive",
        "x-accel-buffering": "no",
      });
      // An id from the future (made up, or another clock's) would hold back every live event.
      // Bounded on the cluster's clock, and without minting an id: newId would move this
      // process's event ids onto its own clock, ahead of the others' tails when it runs ahead.
      const now = eventIdBound(app.nbfleet.cluster.clock.now() + 1);
      let lastSent = after === undefined ? "" : after > now ? now : after;
      const stream = new SseWriter(raw, settings.eventStreamMaxBufferBytes, (buffered) =>
        request.log.info(
          { bufferedBytes: buffered, lastEventId: lastSent },
          "event stream reader too far behind; disconnected (it resumes with Last-Event-ID)",
        ),
      );
      stream.send(`retry: ${RETRY_MS}\n: nbfleet events\n\n`);
      // Its token or session revoked, the stream ends; the reconnect is then refused (401).
      tracked.endWith((revoked) => stream.end("revoked", `: ${revocationError(revoked).message}\n\n`));
      /** Live events are bounded by the buffer limit; the replay (`bounded` false) by drained(). */
      const deliver = (event: FleetEvent, bounded = true) => {
        if (event.id <= lastSent || !wanted(event)) return;
        lastSent = event.id;
        stream.send(`id: ${event.id}\ndata: ${JSON.stringify(event)}\n\n`, bounded);
      };
      const replay = async (events: FleetEvent[]): Promise<boolean> => {
        for (const event of events) {
          deliver(event, false);
          if (stream.full && !(await stream.drained(STALL_TIMEOUT_MS))) return false;
        }
        return !stream.closed;
      };

      // Subscribe before replaying so nothing falls between the replay and the live stream.
      let live = after === undefined;
      let backlog: FleetEvent[] = [];
      let backlogOverflowed = false;
      const unsubscribe = feed.subscribe((event) => {
        if (live) deliver(event);
        else if (!wanted(event)) return;
        else if (backlog.length < BACKLOG_LIMIT) backlog.push(event);
        else backlogOverflowed = true;
      });
      const heartbeat = setInterval(() => stream.send(": ping\n\n"), HEARTBEAT_MS);
      heartbeat.unref();
      raw.on("close", () => {
        unsubscribe();
        clearInterval(heartbeat);
      });
      if (after === undefined) return;

      // Replay: each pass reads the store after a flush while live events wait in the backlog,
      // then empties the backlog; once it is empty the stream is live (no await in between).
      // A pass whose backlog overflowed is followed by another that reads those from the store.
      // False when the reader went away or stalled.
      let cursor = lastSent;
      const catchUp = async (): Promise<boolean> => {
        for (;;) {
          backlog = [];
          backlogOverflowed = false;
          await feed.flush();
          // PostgreSQL: only up to where the feed has read; later events come through it.
          const through = feed.position();
          for (;;) {
            const page = await store.events.list({ after: cursor, through, vmName: vm, limit: REPLAY_PAGE });
            if (!(await replay(page))) return false;
            cursor = page.at(-1)?.id ?? cursor;
            if (page.length < REPLAY_PAGE) break;
          }
          while (!backlogOverflowed && backlog.length > 0) {
            const next = backlog;
            backlog = [];
            if (!(await replay(next))) return false;
          }
          if (!backlogOverflowed) return true;
        }
      };
      try {
        live = await catchUp();
      } catch (error) {
        request.log.warn({ err: error }, "event stream replay failed; the client reconnects and retries");
        stream.close("replay failed");
      }
    },
  );
};
