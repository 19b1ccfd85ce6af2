/**
 * The agent gateway under hostile frames, each on a real WebSocket with a real credential:
 * every one either ends its connection with the documented close code or is ignored, and none
 * changes the store (tables compared row by row before and after). A well-behaved agent on the
 * same controller never notices, and the controller keeps serving.
 */
import { randomBytes } from "node:crypto";
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { CloseCode, PROTOCOL_VERSION, type WelcomeMessage } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { HandOverProvider } from "@nbfleet/testkit/hand-over-provider";
import { call } from "@nbfleet/testkit/http";
import { type RawAgent, openRaw, rawHello } from "@nbfleet/testkit/raw-agent";
import type { SimAgent } from "@nbfleet/testkit/sim-agent";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import { selfSignedPair } from "@nbfleet/testkit/test-ca";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";

let controller: TestController;
const raws: RawAgent[] = [];
afterEach(async () => {
  for (const raw of raws.splice(0)) raw.ws.terminate();
  await controller?.close();
});

const MAX_MESSAGE_BYTES = 16 * 1024;
const TABLES = [
  "vms",
  "vm_labels",
  "vm_status",
  "agent_secrets",
  "commands",
  "events",
  "tokens",
  "terminal_sessions",
] as const;

/** Every row of every table, in a stable order; rows about `exceptVm`'s own link left out. */
async function snapshot(exceptVm?: string): Promise<Record<string, unknown[]>> {
  const { store } = controller.app.nbfleet;
  await store.writer.flush();
  const out: Record<string, unknown[]> = {};
  for (const table of TABLES) {
    const rows = (await store.db.selectFrom(table).selectAll().execute()) as Array<Record<string, unknown>>;
    out[table] = rows
      .filter((row) => !(exceptVm && (table === "vm_status" || table === "events") && ownRow(row, exceptVm)))
      .map((row) => JSON.stringify(row))
      .sort();
  }
  return out;
}

const ownRow = (row: Record<string, unknown>, vm: string) => row.vm_name === vm;

function message(type: string, body: Record<string, unknown>, v: unknown = PROTOCOL_VERSION): string {
  return JSON.stringify({ v, id: `x-${Math.random()}`, type, ...body });
}

async function vmWithAgent(provider: SimProvider, name: string): Promise<SimAgent> {
  const res = await call(controller.app, "POST", "/v1/vms", { token: controller.adminToken, body: { name } });
  expect(res.statusCode).toBe(201);
  const agent = await provider.connected(name);
  // Connected again with its credential, so its bootstrap token is spent and nothing is pending.
  agent.close();
  await agent.waitFor(() => agent.closes.length > 0, 5000, "its close");
  await agent.connect();
  return agent;
}

async function open(token: string): Promise<RawAgent> {
  const raw = openRaw(controller.url, token);
  raws.push(raw);
  await raw.opened;
  return raw;
}

async function welcomedRaw(token: string): Promise<RawAgent> {
  const raw = await open(token);
  raw.ws.send(rawHello());
  await new Promise<void>((resolve) => raw.ws.once("message", () => resolve()));
  expect((raw.messages[0] as WelcomeMessage).type).toBe("welcome");
  return raw;
}

const stateOf = () => JSON.parse(rawHello()).state;

/** A masked client text frame (RFC 6455 5.2). */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = randomBytes(4);
  let length: Buffer;
  if (payload.length < 126) length = Buffer.from([0x80 | payload.length]);
  else if (payload.length < 65_536)
    length = Buffer.from([0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  else {
    length = Buffer.alloc(9);
    length[0] = 0x80 | 127;
    length.writeBigUInt64BE(BigInt(payload.length), 1);
  }
  for (let i = 0; i < payload.length; i++) payload[i] = payload.readUInt8(i) ^ mask.readUInt8(i % 4);
  return Buffer.concat([Buffer.from([0x81]), length, mask, payload]);
}

/** The text messages and the close code in what a server sent after its 101 (unmasked frames). */
function serverFrames(data: Buffer): { texts: string[]; closeCode: number | null } {
  const texts: string[] = [];
  let at = 0;
  while (at + 2 <= data.length) {
    const opcode = data[at]! & 0x0f;
    let length = data[at + 1]! & 0x7f;
    let start = at + 2;
    if (length === 126) {
      length = data.readUInt16BE(start);
      start += 2;
    } else if (length === 127) {
      length = Number(data.readBigUInt64BE(start));
      start += 8;
    }
    if (start + length > data.length) break;
    const payload = data.subarray(start, start + length);
    if (opcode === 0x8) return { texts, closeCode: payload.length >= 2 ? payload.readUInt16BE(0) : 1005 };
    if (opcode === 0x1) texts.push(payload.toString("utf8"));
    at = start + length;
  }
  return { texts, closeCode: null };
}

/**
 * Upgrades a raw TCP connection and writes every frame in one write, reading nothing more until
 * that write is done (as a blocking client does); resolves with the upgrade status, the close
 * code the controller sent (null when the connection was reset before it could be read), and
 * whether a welcome came.
 */
function framesInOneWrite(
  token: string,
  frames: string[],
): Promise<{ status: number; closeCode: number | null; welcomed: boolean }> {
  const { port } = new URL(controller.url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port: Number(port) });
    let received = Buffer.alloc(0);
    socket.on("connect", () =>
      socket.write(
        "GET /v1/agent/connect HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
          `Authorization: Bearer ${token}\r\n\r\n`,
      ),
    );
    let upgraded = false;
    socket.on("data", (chunk) => {
      received = Buffer.concat([received, chunk]);
      if (!upgraded && received.includes("\r\n\r\n")) {
        upgraded = true;
        socket.pause();
        socket.write(Buffer.concat(frames.map(clientFrame)), () => socket.resume());
      }
    });
    socket.on("error", () => {});
    socket.on("close", () => {
      const head = received.indexOf("\r\n\r\n");
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(received.toString("latin1"))?.[1] ?? 0);
      const { texts, closeCode } = serverFrames(received.subarray(head + 4));
      resolve({ status, closeCode, welcomed: texts.some((t) => t.includes('"type":"welcome"')) });
    });
  });
}

/** A raw TCP agent: upgraded, frames written as given, everything after the 101 kept. */
async function tcpAgent(token: string): Promise<{
  socket: net.Socket;
  send(text: string): void;
  received(): Buffer;
  /** Resolves with everything after the 101 once the connection is gone. */
  closed: Promise<Buffer>;
}> {
  const { port } = new URL(controller.url);
  const socket = net.connect({ host: "127.0.0.1", port: Number(port) });
  let data = Buffer.alloc(0);
  let head = -1;
  socket.on("data", (chunk) => {
    data = Buffer.concat([data, chunk]);
  });
  socket.on("error", () => {});
  const closed = new Promise<Buffer>((resolve) => socket.on("close", () => resolve(data.subarray(head + 4))));
  await new Promise<void>((resolve) => socket.on("connect", resolve));
  socket.write(
    "GET /v1/agent/connect HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
      `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
      `Authorization: Bearer ${token}\r\n\r\n`,
  );
  await eventually(
    async () => data.indexOf("\r\n\r\n"),
    (at) => at >= 0,
  );
  head = data.indexOf("\r\n\r\n");
  expect(data.toString("latin1")).toMatch(/^HTTP\/1\.1 101/);
  return {
    socket,
    send: (text) => socket.write(clientFrame(text)),
    received: () => data.subarray(head + 4),
    closed,
  };
}

describe("agent gateway: hostile frames", () => {
  it("closes each bad frame with its documented code and changes nothing in the store", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider, settings: { maxMessageBytes: MAX_MESSAGE_BYTES } });
    const good = await vmWithAgent(provider, "good");
    const abuser = await vmWithAgent(provider, "abuser");
    abuser.close();
    await abuser.waitFor(() => abuser.closes.length > 1, 5000, "the abuser's agent gone");
    const credential = abuser.credential!;
    const goodCloses = good.closes.length;

    // Before any hello: not even the abuser's own rows may change.
    const cases: Array<[string, string | Buffer, number]> = [
      ["malformed JSON", '{"v":"1.0",', CloseCode.invalidMessage],
      [
        "deeply nested garbage",
        "[".repeat(100_000).slice(0, MAX_MESSAGE_BYTES - 1),
        CloseCode.invalidMessage,
      ],
      ["a JSON array", "[1,2,3]", CloseCode.invalidMessage],
      ["null", "null", CloseCode.invalidMessage],
      ["a number for the version", message("hello", {}, 1), CloseCode.invalidMessage],
      ["a wrong type in the hello", rawHello({ capabilities: "all" }), CloseCode.invalidMessage],
      ["a hello without its state", rawHello({ state: undefined }), CloseCode.invalidMessage],
      ["an unknown message type", message("gossip", { about: "x" }), CloseCode.invalidMessage],
      ["another protocol major", rawHello({ v: "9.0" }), CloseCode.protocolVersion],
      ["a binary frame", randomBytes(64), CloseCode.policyViolation],
      ["a report before the hello", message("state", { state: stateOf() }), CloseCode.policyViolation],
      ["an oversized frame", "x".repeat(MAX_MESSAGE_BYTES + 1), CloseCode.messageTooBig],
      ["an oversized hello", rawHello({ padding: "y".repeat(MAX_MESSAGE_BYTES) }), CloseCode.messageTooBig],
    ];
    const before = await snapshot();
    for (const [what, frame, code] of cases) {
      const raw = await open(credential);
      raw.ws.send(frame);
      const closed = await raw.closed;
      expect({ what, code: closed.code }).toEqual({ what, code });
      expect(raw.messages).toEqual([]);
    }
    // Far over the cap, from a client that reads only once its write is done: the controller
    // refuses the frame from its header with most of it still coming, and must still deliver
    // 1009 (a socket destroyed at once resets the connection and the close frame is lost: 1006).
    for (let i = 0; i < 5; i++) {
      const big = await framesInOneWrite(credential, ["z".repeat(4 * 1024 * 1024)]);
      expect(big).toEqual({ status: 101, closeCode: CloseCode.messageTooBig, welcomed: false });
    }
    expect(await snapshot()).toEqual(before);
    expect(good.connected).toBe(true);
    expect(good.closes).toHaveLength(goodCloses);
  });

  it("delivers 1009 behind a backlog of commands to an agent that reads slowly", async () => {
    const provider = new HandOverProvider();
    controller = await startTestController({ provider, settings: { maxMessageBytes: MAX_MESSAGE_BYTES } });
    const { app, adminToken: token } = controller;
    expect((await call(app, "POST", "/v1/vms", { token, body: { name: "slow" } })).statusCode).toBe(201);
    const agent = await tcpAgent(provider.contexts.get("slow")!.bootstrapToken);
    agent.send(rawHello());
    await eventually(
      async () => serverFrames(agent.received()).texts,
      (texts) => texts.some((t) => t.includes('"type":"welcome"')),
    );
    // The agent stops reading while the controller sends it about 5.5 MB of commands: more than
    // the kernel buffers hold (4 MiB send, 128 KiB receive here), so some wait in the controller's
    // socket, and the close frame queues behind them.
    agent.socket.pause();
    const hostnames = Array.from({ length: 32 }, (_, i) => `${"h".repeat(240)}-${i}.example`);
    for (let i = 0; i < 650; i++) {
      const sent = await call(app, "POST", "/v1/vms/slow/notebook/certificate", {
        token,
        body: { hostnames },
      });
      expect(sent.statusCode).toBe(202);
    }
    agent.send("z".repeat(MAX_MESSAGE_BYTES + 1));
    await sleep(200);
    agent.socket.resume();
    const { closeCode, texts } = serverFrames(await agent.closed);
    expect(texts.filter((t) => t.includes('"certificate.rotate"')).length).toBeGreaterThan(0);
    expect(closeCode).toBe(CloseCode.messageTooBig);
  });

  it("closes an oversized frame with 1009 over TLS too", async () => {
    const pair = await selfSignedPair(makeDataDir("nbf-hostile-tls-", 0o700), "controller");
    const provider = new HandOverProvider();
    controller = await startTestController({
      provider,
      settings: { maxMessageBytes: MAX_MESSAGE_BYTES, tlsCert: pair.cert, tlsKey: pair.key },
    });
    const res = await call(controller.app, "POST", "/v1/vms", {
      token: controller.adminToken,
      body: { name: "big" },
    });
    expect(res.statusCode).toBe(201);
    const token = provider.contexts.get("big")!.bootstrapToken;
    const codes: number[] = [];
    for (let i = 0; i < 20; i++) {
      const raw = openRaw(controller.url, token, { rejectUnauthorized: false });
      raws.push(raw);
      await raw.opened;
      raw.ws.send(Buffer.alloc(4 * 1024 * 1024, "z").toString());
      codes.push((await raw.closed).code);
    }
    expect(codes).toEqual(Array(20).fill(CloseCode.messageTooBig));
  });

  it("ignores results and streams for another machine, replayed results and unknown commands", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider });
    const { app, adminToken: token } = controller;
    const good = await vmWithAgent(provider, "good");
    const abuser = await vmWithAgent(provider, "abuser");
    abuser.close();
    await abuser.waitFor(() => abuser.closes.length > 1, 5000, "the abuser's agent gone");
    const goodCloses = good.closes.length;

    // One finished command on each machine: the good agent's, and the abuser's own.
    const goodCommand = (await call(app, "POST", "/v1/vms/good/notebook/restart", { token })).json();
    expect((await call(app, "GET", `/v1/commands/${goodCommand.id}?wait=5`, { token })).json().state).toBe(
      "succeeded",
    );
    const raw = await welcomedRaw(abuser.credential!);
    const own = (await call(app, "POST", "/v1/vms/abuser/notebook/restart", { token })).json();
    await eventually(
      async () => raw.messages,
      (messages) => messages.some((m) => (m as { id?: string }).id === own.id),
    );
    raw.ws.send(message("ack", { commandId: own.id }));
    raw.ws.send(message("result", { commandId: own.id, ok: true, data: { pid: 1 } }));
    const finished = (await call(app, "GET", `/v1/commands/${own.id}?wait=5`, { token })).json();
    expect(finished).toMatchObject({ state: "succeeded", result: { pid: 1 } });

    const before = await snapshot("abuser");
    const ignored = [
      // Another machine's command: acknowledged, progressed, failed, succeeded.
      message("ack", { commandId: goodCommand.id }),
      message("progress", { commandId: goodCommand.id, message: "hijacked" }),
      message("result", { commandId: goodCommand.id, ok: false, error: { code: "NBF_X", message: "no" } }),
      message("result", { commandId: goodCommand.id, ok: true, data: { pid: 666 } }),
      // Its own finished command, replayed with another outcome.
      message("ack", { commandId: own.id }),
      message("result", { commandId: own.id, ok: false, error: { code: "NBF_REPLAY", message: "again" } }),
      message("result", { commandId: own.id, ok: true, data: { pid: 2 } }),
      // Commands and streams nobody sent.
      message("result", { commandId: "cmd_does_not_exist", ok: true }),
      message("ack", { commandId: "cmd_does_not_exist" }),
      message("pty.output", { session: "pty_someone_else", data: "aGk=", stream: "stdout" }),
      message("pty.exit", { session: "pty_someone_else", exitCode: 0, signal: null }),
      message("logs.data", { stream: "logs_someone_else", lines: ["x"] }),
      message("logs.end", { stream: "logs_someone_else" }),
    ];
    for (const frame of ignored) raw.ws.send(frame);
    // Acks are written after a hold of a second: wait it out, so a stray one would show.
    await sleep(1500);
    expect(raw.ws.readyState).toBe(raw.ws.OPEN);
    expect(await snapshot("abuser")).toEqual(before);
    expect((await call(app, "GET", `/v1/commands/${goodCommand.id}`, { token })).json()).toMatchObject({
      state: "succeeded",
    });
    expect((await call(app, "GET", `/v1/commands/${own.id}`, { token })).json()).toMatchObject({
      state: "succeeded",
      result: { pid: 1 },
    });

    // A flood of frames for nobody after the welcome: ignored at line rate, nothing stored, and
    // the controller answers others meanwhile.
    const flood = await welcomedRaw(abuser.credential!);
    const beforeFlood = await snapshot("abuser");
    const stray = message("ack", { commandId: "cmd_nobody_sent_this" });
    for (let i = 0; i < 20_000; i++) flood.ws.send(stray);
    expect((await call(app, "GET", "/healthz")).statusCode).toBe(200);
    await sleep(1500);
    expect(flood.ws.readyState).toBe(flood.ws.OPEN);
    expect(await snapshot("abuser")).toEqual(beforeFlood);

    // A flood before the welcome (all in one TCP write, so it is there before the hello is
    // answered): cut off with 1008, and the hello in it never welcomed.
    const beforeEarly = await snapshot();
    const early = await framesInOneWrite(abuser.credential!, [
      rawHello(),
      ...Array.from({ length: 20 }, () => message("state", { state: stateOf() })),
    ]);
    expect(early).toEqual({ status: 101, closeCode: CloseCode.policyViolation, welcomed: false });
    expect(await snapshot()).toEqual(beforeEarly);

    expect(good.connected).toBe(true);
    expect(good.closes).toHaveLength(goodCloses);
    const again = (await call(app, "POST", "/v1/vms/good/notebook/restart", { token })).json();
    expect((await call(app, "GET", `/v1/commands/${again.id}?wait=5`, { token })).json().state).toBe(
      "succeeded",
    );
    expect((await call(app, "GET", "/healthz")).json()).toMatchObject({ status: "ok" });
  });

  it("keeps a machine's held ack when another machine acks the same command id meanwhile", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider });
    const { app, adminToken: token } = controller;
    const [victim, abuser] = await Promise.all(
      ["victim", "abuser"].map(async (name) => {
        const agent = await vmWithAgent(provider, name);
        agent.close();
        await agent.waitFor(() => agent.closes.length > 1, 5000, `${name}'s agent gone`);
        return welcomedRaw(agent.credential!);
      }),
    );
    const sentToVictim = async () => {
      const command = (await call(app, "POST", "/v1/vms/victim/notebook/restart", { token })).json();
      await eventually(
        async () => victim!.messages,
        (messages) => messages.some((m) => (m as { id?: string }).id === command.id),
      );
      return command.id as string;
    };
    const rowOf = (id: string) =>
      controller.app.nbfleet.store.db
        .selectFrom("commands")
        .select(["state", "acked_at"])
        .where("id", "=", id)
        .executeTakeFirstOrThrow();

    // The foreign ack comes while the victim's is held (an ack is held a second before it is
    // written), and the victim's ack is written all the same.
    const acked = await sentToVictim();
    victim!.ws.send(message("ack", { commandId: acked }));
    await sleep(100);
    abuser!.ws.send(message("ack", { commandId: acked }));
    await sleep(1500);
    const ackedRow = await rowOf(acked);
    expect(ackedRow.state).toBe("acked");
    expect(ackedRow.acked_at).not.toBeNull();

    // The same, with the victim's result arriving while both acks are held: its ack time is
    // written with the result.
    const finished = await sentToVictim();
    victim!.ws.send(message("ack", { commandId: finished }));
    await sleep(100);
    abuser!.ws.send(message("ack", { commandId: finished }));
    victim!.ws.send(message("result", { commandId: finished, ok: true, data: { pid: 1 } }));
    expect((await call(app, "GET", `/v1/commands/${finished}?wait=5`, { token })).json().state).toBe(
      "succeeded",
    );
    expect((await rowOf(finished)).acked_at).not.toBeNull();
    expect(abuser!.ws.readyState).toBe(abuser!.ws.OPEN);
  });
});
