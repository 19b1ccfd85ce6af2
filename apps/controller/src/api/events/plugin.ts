/**
 * `GET /v1/events`: the fleet's events as Server-Sent Events. With `Last-Event-ID` (or
 * `after=<event id>`) stored events after that one are replayed first, so a client that
 * reconnects misses nothing; then live events follow. Filters: `vm`, `kind` (prefix).
 */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import { Type } from "@sinclair/typebox";
import type { FleetEvent } from "../../events/bus.js";
import { Errors } from "../schemas.js";

const HEARTBEAT_MS = 15_000;
const REPLAY_LIMIT = 1000;

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
  const { store, bus } = app.nbfleet;

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

      reply.hijack();
      const raw = reply.raw;
      raw.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache, no-transform",
        connection: "keep-alive",
        "x-accel-buffering": "no",
      });
      raw.write(": nbfleet events\n\n");
      let lastSent = "";
      const write = (event: FleetEvent) => {
        if (event.id <= lastSent || !wanted(event)) return;
        lastSent = event.id;
        raw.write(`id: ${event.id}\ndata: ${JSON.stringify(event)}\n\n`);
      };

      // Subscribe before replaying so nothing falls between the replay and the live stream.
      let backlog: FleetEvent[] | null = after === undefined ? null : [];
      const unsubscribe = bus.subscribe((event) => (backlog ? backlog.push(event) : write(event)));
      const heartbeat = setInterval(() => raw.write(": ping\n\n"), HEARTBEAT_MS);
      heartbeat.unref();
      raw.on("close", () => {
        unsubscribe();
        clearInterval(heartbeat);
      });

      if (after !== undefined) {
        await store.writer.flush();
        for (const event of await store.events.list({ after, vmName: vm, limit: REPLAY_LIMIT })) write(event);
        for (const event of backlog ?? []) write(event);
        backlog = null;
      }
    },
  );
};
