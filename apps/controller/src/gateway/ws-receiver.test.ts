/**
 * The `ws` receiver as patched (patches/ws@8.23.0.patch): one fragments array per connection,
 * emptied after each message, instead of a fresh one per message. A fresh array outlived a quiet
 * connection's spell, was promoted, and once replaced kept the next message's buffers alive
 * through scavenges. Messages, fragmented ones included, must arrive as before; a socket whose
 * binaryType hands the fragments array itself to the listener must still get one per message.
 */
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";

type Received = { data: unknown; isBinary: boolean; fragments: unknown };

let server: WebSocketServer | undefined;
afterEach(() => {
  server?.close();
  for (const client of server?.clients ?? []) client.terminate();
});

async function pair(binaryType?: "fragments") {
  server = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  await new Promise((resolve) => server!.once("listening", resolve));
  const accepted = new Promise<WebSocket>((resolve) => server!.once("connection", resolve));
  const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
  await new Promise((resolve) => client.once("open", resolve));
  const socket = await accepted;
  if (binaryType) socket.binaryType = binaryType;
  const received: Received[] = [];
  const receiver = (socket as unknown as { _receiver: { _fragments: unknown[] } })._receiver;
  socket.on("message", (data, isBinary) => received.push({ data, isBinary, fragments: receiver._fragments }));
  const until = async (count: number) => {
    while (received.length < count) await new Promise((resolve) => setTimeout(resolve, 5));
  };
  return { client, received, receiver, until };
}

describe("ws receiver (patched)", () => {
  it("reuses one emptied fragments array for every message, fragmented ones included", async () => {
    const { client, received, receiver, until } = await pair();
    const fragments = receiver._fragments;
    client.send("first");
    client.send(Buffer.from([1, 2, 3]));
    client.send("frag", { fin: false });
    client.send("ment", { fin: false });
    client.send("ed", { fin: true });
    await until(3);
    expect(received.map(({ data, isBinary }) => [String(data), isBinary])).toEqual([
      ["first", false],
      ["\u0001\u0002\u0003", true],
      ["fragmented", false],
    ]);
    for (const message of received) expect(message.fragments).toBe(fragments);
    expect(receiver._fragments).toBe(fragments);
    expect(fragments).toHaveLength(0);
  });

  it("hands a binaryType 'fragments' listener an array of its own per message", async () => {
    const { client, received, until } = await pair("fragments");
    client.send(Buffer.from("ab"), { fin: false });
    client.send(Buffer.from("cd"), { fin: true });
    client.send(Buffer.from("ef"));
    await until(2);
    const [first, second] = received.map(({ data }) => data as Buffer[]);
    expect(first!.map(String)).toEqual(["ab", "cd"]);
    expect(second!.map(String)).toEqual(["ef"]);
    expect(first).not.toBe(second);
  });
});
