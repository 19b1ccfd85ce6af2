import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { AgentSession, CLOSE_SLOW_CONSUMER } from "./session.js";

let server: WebSocketServer | undefined;
afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
});

async function pair(): Promise<{ session: AgentSession; client: WebSocket }> {
  server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((resolve) => server!.once("listening", resolve));
  const { port } = server.address() as AddressInfo;
  const accepted = new Promise<WebSocket>((resolve) => server!.once("connection", resolve));
  const client = new WebSocket(`ws://127.0.0.1:${port}`);
  await new Promise((resolve) => client.once("open", resolve));
  return { session: new AgentSession(await accepted), client };
}

describe("agent session send queue", () => {
  it("delivers everything in order to a reader that keeps up", async () => {
    const { session, client } = await pair();
    const got: number[] = [];
    const all = new Promise<void>((resolve) =>
      client.on("message", (data) => {
        got.push(JSON.parse(String(data)).n);
        if (got.length === 2000) resolve();
      }),
    );
    const payload = "x".repeat(1024);
    for (let n = 0; n < 2000; n++) expect(session.send({ n, payload })).toBe(true);
    await all;
    expect(got).toEqual(Array.from({ length: 2000 }, (_, n) => n));
    client.close();
  });

  it("stops writing into a peer that does not read and closes it as a slow consumer", async () => {
    const { session, client } = await pair();
    // The client stops reading: the server's socket buffer fills, then the session's queue.
    (client as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    const payload = "y".repeat(64 * 1024);
    let accepted = 0;
    while (session.send({ payload }) && accepted < 10_000) accepted++;
    expect(accepted).toBeLessThan(10_000);
    expect(session.open).toBe(false);
    const closed = new Promise<number>((resolve) => client.once("close", (code) => resolve(code)));
    (client as unknown as { _socket: { resume(): void } })._socket.resume();
    expect(await closed).toBe(CLOSE_SLOW_CONSUMER);
  });
});
