import { request } from "node:http";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import { SseReader } from "@nbfleet/testkit/sse-reader";
import { eventually } from "@nbfleet/testkit/wait";
import { createParser } from "eventsource-parser";
import { afterEach, describe, expect, it } from "vitest";
import type { EventBus, FleetEvent } from "../../events/bus.js";

let controller: TestController;
afterEach(async () => {
  await controller?.close();
});

/** Reads an SSE stream until `until` holds for the events seen; returns them. */
function readEvents(
  path: string,
  token: string,
  until: (events: FleetEvent[]) => boolean,
  headers: Record<string, string> = {},
): Promise<{ events: FleetEvent[]; status: number; contentType: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${controller.url}${path}`,
      { headers: { authorization: `Bearer ${token}`, ...headers } },
      (res) => {
        const events: FleetEvent[] = [];
        const parser = createParser({ onEvent: ({ data }) => events.push(JSON.parse(data)) });
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          parser.feed(chunk);
          if (until(events)) {
            req.destroy();
            resolve({
              events,
              status: res.statusCode ?? 0,
              contentType: String(res.headers["content-type"]),
            });
          }
        });
        res.on("end", () => reject(new Error(`stream ended early with ${events.length} events`)));
      },
    );
    req.on("error", (error) => {
      if (!req.destroyed) reject(error);
    });
    req.setTimeout(10_000, () => req.destroy(new Error("no matching events within 10 s")));
    req.end();
  });
}

describe("events (SSE)", () => {
  it("streams live events and replays stored ones after Last-Event-ID", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider });
    const { app, adminToken: token } = controller;
    const live = readEvents("/v1/events?vm=ev", token, (events) =>
      events.some((e) => e.kind === "command.succeeded" && e.data?.name === "notebook.restart"),
    );
    await eventually(
      async () => app.nbfleet.bus.subscriberCount,
      (n) => n === 1,
    );
    await call(app, "POST", "/v1/vms", { token, body: { name: "ev" } });
    await call(app, "POST", "/v1/vms", { token, body: { name: "other" } });
    const agent = await provider.connected("ev");
    agent.sendMessage({
      type: "event",
      event: {
        at: new Date().toISOString(),
        kind: "notebook.log",
        level: "warn",
        message: "disk is filling up",
      },
    });
    await call(app, "POST", "/v1/vms/ev/notebook/restart", { token });
    const { events, status, contentType } = await live;
    expect(status).toBe(200);
    expect(contentType).toContain("text/event-stream");
    const kinds = events.map((e) => e.kind);
    expect(kinds).toEqual(
      expect.arrayContaining(["vm.created", "agent.connected", "notebook.log", "command.queued"]),
    );
    expect(events.every((e) => e.vmName === "ev")).toBe(true);
    expect(events.find((e) => e.kind === "notebook.log")).toMatchObject({ source: "agent", level: "warn" });

    const first = events[0]!;
    const replay = await readEvents(
      "/v1/events?vm=ev&kind=command.",
      token,
      (seen) => seen.some((e) => e.kind === "command.succeeded"),
      { "last-event-id": first.id },
    );
    expect(replay.events.every((e) => e.kind.startsWith("command.") && e.id > first.id)).toBe(true);
    const ids = replay.events.map((e) => e.id);
    expect([...ids].sort()).toEqual(ids);
  });

  it("replays every stored event after Last-Event-ID, page after page, then goes on live", async () => {
    controller = await startTestController();
    const { app, adminToken: token } = controller;
    const emitted = emitMany(app.nbfleet.bus, 2500, 100);
    const from = emitted[0]!;
    const reader = new SseReader(`${controller.url}/v1/events`, { token, lastEventId: from.id });
    expect(await reader.ready).toBe(200);
    await eventually(
      async () => reader.events.length,
      (n) => n >= emitted.length - 1,
    );
    const live = emitMany(app.nbfleet.bus, 3, 10);
    await eventually(
      async () => reader.events.length,
      (n) => n >= emitted.length - 1 + live.length,
    );
    reader.close();
    expect(reader.events.map((e) => e.id)).toEqual([...emitted.slice(1), ...live].map((e) => e.id));
  });

  it("disconnects a reader that falls too far behind; resumed with Last-Event-ID it misses nothing", async () => {
    controller = await startTestController({ settings: { eventStreamMaxBufferBytes: 64 * 1024 } });
    const { app, adminToken: token } = controller;
    const stalled = new SseReader(`${controller.url}/v1/events`, { token });
    expect(await stalled.ready).toBe(200);
    await eventually(
      async () => app.nbfleet.bus.subscriberCount,
      (n) => n === 1,
    );
    const emitted = emitMany(app.nbfleet.bus, 10, 10);
    await eventually(
      async () => stalled.events.length,
      (n) => n === 10,
    );
    // The viewer stops reading; 20 MB of events follow, far more than the socket buffers of
    // both ends hold.
    stalled.pause();
    for (let batch = 0; batch < 40; batch++) {
      emitted.push(...emitMany(app.nbfleet.bus, 500, 1000));
      await new Promise((resolve) => setImmediate(resolve));
    }
    await eventually(
      async () => app.nbfleet.bus.subscriberCount,
      (n) => n === 0,
    );
    // What it had not taken yet is gone with the connection; it resumes after the last event
    // it did take, as an EventSource does.
    stalled.resume();
    await stalled.ended;
    expect(stalled.events.length).toBeLessThan(emitted.length);
    const resumed = new SseReader(`${controller.url}/v1/events`, { token, lastEventId: stalled.lastId });
    const lastId = emitted.at(-1)!.id;
    await eventually(
      async () => resumed.lastId,
      (id) => id === lastId,
      20_000,
    );
    resumed.close();
    const seen = [...stalled.events, ...resumed.events].map((e) => e.id);
    expect(seen).toEqual(emitted.map((e) => e.id));
  });

  it("goes on live after a Last-Event-ID from the future, a made-up one included", async () => {
    controller = await startTestController();
    const { app, adminToken: token } = controller;
    const reader = new SseReader(`${controller.url}/v1/events`, { token, lastEventId: "zzzz" });
    expect(await reader.ready).toBe(200);
    await eventually(
      async () => app.nbfleet.bus.subscriberCount,
      (n) => n === 1,
    );
    const live = emitMany(app.nbfleet.bus, 3, 10);
    await eventually(
      async () => reader.events.length,
      (n) => n === 3,
    );
    reader.close();
    expect(reader.events.map((e) => e.id)).toEqual(live.map((e) => e.id));
  });

  it("ends the stream when its token is revoked, and leaves the others' streams open", async () => {
    controller = await startTestController();
    const { app, adminToken, url } = controller;
    const created = await call(app, "POST", "/v1/tokens", {
      token: adminToken,
      body: { name: "wall-display", role: "viewer" },
    });
    const viewer = created.json() as { id: string; token: string };
    const revokedReader = new SseReader(`${url}/v1/events`, { token: viewer.token });
    const otherReader = new SseReader(`${url}/v1/events`, { token: adminToken });
    expect(await revokedReader.ready).toBe(200);
    expect(await otherReader.ready).toBe(200);
    await eventually(
      async () => app.nbfleet.bus.subscriberCount,
      (n) => n === 2,
    );

    expect((await call(app, "DELETE", `/v1/tokens/${viewer.id}`, { token: adminToken })).statusCode).toBe(
      204,
    );
    await within(revokedReader.ended, 3000, "the revoked token's stream to end");
    const later = emitMany(app.nbfleet.bus, 1, 10);
    await eventually(
      async () => otherReader.lastId,
      (id) => id === later[0]!.id,
    );
    expect(revokedReader.events.map((e) => e.id)).not.toContain(later[0]!.id);
    expect(otherReader.isEnded).toBe(false);
    // The stored event says which token, for the other replicas to end its streams too.
    const revokedEvent = otherReader.events
      .map((e) => JSON.parse(e.data) as FleetEvent)
      .find((e) => e.kind === "token.revoked");
    expect(revokedEvent?.data).toEqual({ tokenId: viewer.id });
    otherReader.close();
    const again = new SseReader(`${url}/v1/events`, { token: viewer.token });
    expect(await again.ready).toBe(401);
    again.close();
  });

  it("needs a viewer token", async () => {
    controller = await startTestController({ listen: false });
    expect((await call(controller.app, "GET", "/v1/events")).statusCode).toBe(401);
  });
});

/** Resolves with `promise`, or fails naming `what` after `ms`. */
async function within(promise: Promise<unknown>, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`waited ${ms} ms for ${what}`)), ms);
  });
  try {
    await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Emits `count` events carrying `dataBytes` of payload each; returns them in order. */
function emitMany(bus: EventBus, count: number, dataBytes: number): FleetEvent[] {
  const padding = "x".repeat(dataBytes);
  return Array.from({ length: count }, (_, seq) =>
    bus.emit({ vmName: null, kind: "test.stream", message: `event ${seq}`, data: { seq, padding } }),
  );
}
