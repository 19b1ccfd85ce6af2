/**
 * Two replicas in one process on one PostgreSQL database: A serves the client, B holds the
 * agent's socket (a real agent link with real node-pty and real log files). Terminals and log
 * follows opened on A must behave as if opened on B; the internal routes refuse everything not
 * signed with the replica secret.
 */
import { randomBytes } from "node:crypto";
import { appendFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { TerminalCloseCode, type TerminalSessionView } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { digestOf, digestOfFile } from "@nbfleet/testkit/digest";
import { call } from "@nbfleet/testkit/http";
import { freshDatabaseUrl } from "@nbfleet/testkit/postgres-database";
import { type Fleet, RecordedTerminal, startFleet } from "@nbfleet/testkit/terminal-fleet";
import { eventually } from "@nbfleet/testkit/wait";
import { Waiters } from "@nbfleet/testkit/waiters";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { CliError } from "../../cli/client.js";
import type { NbfError } from "../../errors.js";
import { REPLICA_SECRET_SETTING, loadReplicaSecret } from "./cluster-secret.js";
import { relayAuthorization } from "./relay-auth.js";
import { StreamRelay } from "./stream-relay.js";

let a: TestController;
let b: Fleet;
let user: string;
let userId: string;
let databaseUrl: string;

/** The cluster's own registry and gateway say B holds the agent, at B's listening URL. */
async function heldBy(owner: TestController, vm: string): Promise<void> {
  const { db } = owner.app.nbfleet.store;
  await eventually(
    () =>
      db
        .selectFrom("vm_status")
        .innerJoin("replicas", "replicas.id", "vm_status.replica_id")
        .select(["replicas.id", "replicas.url"])
        .where("vm_status.vm_name", "=", vm)
        .executeTakeFirst(),
    (row) => row?.id === owner.app.nbfleet.relay.replicaId && row.url === owner.url,
  );
}

beforeAll(async () => {
  databaseUrl = await freshDatabaseUrl();
  const settings = { databaseUrl, adminToken: "nbf_relay-test-admin-token", replicaHeartbeatSec: 600 };
  a = await startTestController({ settings });
  b = await startFleet(settings);
  await b.addVm("box");
  await b.controller.app.nbfleet.store.writer.flush();
  await heldBy(b.controller, "box");
  user = await b.token("admin", "alice");
  const tokens = await b.controller.app.nbfleet.store.tokens.list();
  userId = tokens.find((t) => t.name === "alice")!.id;
}, 60_000);

afterAll(async () => {
  await a?.close();
  await b?.close();
}, 30_000);

function shellOnA(extra: Record<string, unknown> = {}, token = user) {
  return RecordedTerminal.open({ baseUrl: a.url, token, vm: "box", ...extra });
}

async function auditRow(session: string): Promise<TerminalSessionView> {
  return eventually(
    async () => {
      const res = await call(a.app, "GET", "/v1/terminal-sessions?vm=box", { token: user });
      return (res.json() as { items: TerminalSessionView[] }).items.find((s) => s.id === session)!;
    },
    (row) => row?.closedAt !== null && row?.closedAt !== undefined,
  );
}

describe("a terminal opened on a replica that does not hold the agent", () => {
  it("types, resizes, exits and closes as on the owner, audited with the user's token", async () => {
    expect(a.app.nbfleet.gateway.capabilities("box")).toBeUndefined();
    const t = await shellOnA({ cols: 100, rows: 30 });
    expect(t.connection.session).toMatchObject({ type: "session", vm: "box", tty: true, reattached: false });
    t.connection.input("echo hi-$((40+2))\r");
    await t.waitText(/hi-42/);
    t.connection.input("stty size\r");
    await t.waitText(/30 100/);
    t.connection.resize(120, 40);
    await sleep(100);
    const from = t.text().length;
    t.connection.input("stty size\r");
    await t.waitText(/40 120/, { from });
    t.connection.input("exit 7\r");
    expect(await t.waitFrame("exit")).toEqual({ type: "exit", exitCode: 7, signal: null });
    expect((await t.waitClosed()).code).toBe(TerminalCloseCode.exited);

    const row = await auditRow(t.session);
    expect(row).toMatchObject({ tokenId: userId, tokenName: "alice", exitCode: 7, endReason: "exited" });
    expect(row.bytesIn).toBeGreaterThan(10);
    // The session lived on B: its terminal service opened it, A's never did.
    expect(a.app.nbfleet.terminals.liveCount("box")).toBe(0);
  });

  it("attaches again through either replica after the client's connection dropped", async () => {
    const first = await shellOnA();
    first.connection.input("echo before-drop\r");
    await first.waitText(/before-drop\r?\n/);
    (first.connection as unknown as { ws: WebSocket }).ws.terminate();
    await first.waitClosed();

    const again = await shellOnA({ session: first.session });
    expect(again.connection.session).toMatchObject({ session: first.session, reattached: true });
    await again.waitText(/before-drop/);
    // Through B itself, which takes the session over from A's client.
    const onB = await RecordedTerminal.open({
      baseUrl: b.controller.url,
      token: user,
      vm: "box",
      session: first.session,
    });
    expect((await again.waitClosed()).code).toBe(TerminalCloseCode.takenOver);
    onB.connection.input("exit 3\r");
    expect(await onB.waitFrame("exit")).toMatchObject({ exitCode: 3 });
    expect((await auditRow(first.session)).attaches).toBe(3);
  });

  it("ends the client's terminal as an agent loss when the owning replica goes away mid-session", async () => {
    const t = await shellOnA();
    t.connection.input("echo still-here\r");
    await t.waitText(/still-here\r?\n/);
    const relay = a.app.nbfleet.relay as unknown as { pipes: Set<{ upstream: WebSocket }> };
    // The replica-to-replica connection drops without a close frame, as when B dies.
    for (const pipe of relay.pipes) (pipe.upstream as unknown as { _socket: net.Socket })._socket.destroy();
    expect(await t.waitFrame("error")).toMatchObject({ code: "NBF_AGENT_NOT_CONNECTED" });
    expect((await t.waitClosed()).code).toBe(TerminalCloseCode.agentGone);
    // B only lost a client: the session is still there for a reattach.
    const again = await shellOnA({ session: t.session });
    again.connection.input("exit 0\r");
    expect((await again.waitClosed()).code).toBe(TerminalCloseCode.exited);
  });

  it("stays open in the audit log when another replica starts; only orphaned rows are closed", async () => {
    const t = await shellOnA();
    const { store } = b.controller.app.nbfleet;
    const status = await store.db
      .selectFrom("vm_status")
      .select("connected_at")
      .where("vm_name", "=", "box")
      .executeTakeFirstOrThrow();
    // A session of the agent's previous connection, whose replica died without closing its row.
    const orphan = {
      ...(await store.terminalSessions.get(t.session))!,
      id: "trm_0000000000000000000001",
      openedAt: new Date(Date.parse(status.connected_at!) - 1000).toISOString(),
    };
    await store.terminalSessions.insert(orphan);
    const c = await startTestController({
      settings: { databaseUrl, adminToken: "nbf_relay-test-admin-token", replicaHeartbeatSec: 600 },
    });
    await c.close();
    expect((await store.terminalSessions.get(orphan.id))?.endReason).toBe("controller_stopped");
    expect((await store.terminalSessions.get(t.session))?.closedAt).toBeNull();
    t.connection.input("exit 0\r");
    expect((await t.waitClosed()).code).toBe(TerminalCloseCode.exited);
    expect((await auditRow(t.session)).endReason).toBe("exited");
  });

  it("passes on the owner's refusals as the same HTTP errors", async () => {
    const unknown = await shellOnA({ session: "trm_0000000000000000000000" }).catch((e: CliError) => e);
    expect((unknown as CliError).code).toBe("NBF_TERMINAL_SESSION_NOT_FOUND");
    const viewer = await b.token("viewer", "vera");
    const refused = await shellOnA({}, viewer).catch((e: CliError) => e);
    expect((refused as CliError).code).toBe("NBF_FORBIDDEN");
  });

  it("keeps a client that stops reading from growing either replica's buffers, and loses nothing", async () => {
    // Far more than the kernel can hold in flight: loopback receive buffers autotune up to
    // tcp_rmem's 32 MiB on each of the three sockets on the way (agent, relay, client), so a
    // smaller total can finish inside them while the client is paused and prove nothing.
    const total = 256 * 1024 * 1024;
    const ws = new WebSocket(
      `${a.url.replace(/^http/, "ws")}/v1/vms/box/shell?tty=0&command=${encodeURIComponent(`head -c ${total} /dev/zero`)}`,
      { headers: { authorization: `Bearer ${user}` } },
    );
    let stdout = 0;
    ws.on("message", (data: Buffer, isBinary) => {
      if (isBinary && data[0] === 1) stdout += data.length - 1;
    });
    const closed = new Promise<number>((resolve) => ws.once("close", resolve));
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    await eventually(
      async () => stdout,
      (n) => n > 100_000,
    );
    ws.pause();
    const owner = b.controller.app.nbfleet;
    const bytesOut = () =>
      [
        ...(owner.terminals as unknown as { sessions: Map<string, { bytesOut: number }> }).sessions.values(),
      ].reduce((n, s) => n + s.bytesOut, 0);
    await sleep(1500);
    const outAt1 = bytesOut();
    await sleep(1000);
    const outAt2 = bytesOut();
    // Paused, only what was already in flight still trickles in; the process waits, alive on B.
    expect(owner.terminals.liveCount("box")).toBe(1);
    expect(outAt1).toBeGreaterThan(0);
    expect(outAt2 - outAt1).toBeLessThan(1024 * 1024);
    expect(outAt2).toBeLessThan(total / 2);
    expect(a.app.nbfleet.relay.bufferedBytes()).toBeLessThan(3 * 1024 * 1024);
    ws.resume();
    expect(await closed).toBe(TerminalCloseCode.exited);
    expect(stdout).toBe(total);
  }, 60_000);
});

describe("an upload through a relayed exec", () => {
  it("goes at the pace the command reads it: the owner's pause reaches the client through the relay", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "nbf-relay-upload-"));
    const file = path.join(dir, "f");
    try {
      const t = await shellOnA({ command: `sleep 3; cat > ${file}` });
      const upload = randomBytes(24 * 1024 * 1024);
      for (let at = 0; at < upload.length; at += 512 * 1024)
        t.connection.input(upload.subarray(at, at + 512 * 1024));
      t.connection.eof();
      await sleep(1500);
      // The agent on B holds B back (pty.inputFlow), B stops reading the relay, A stops reading
      // the client: A holds about its high-water mark, not the upload.
      expect(a.app.nbfleet.relay.bufferedBytes()).toBeLessThan(3 * 1024 * 1024);
      expect(await t.waitFrame("exit", 60_000)).toMatchObject({ exitCode: 0 });
      expect(await digestOfFile(file)).toEqual(digestOf(upload));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 90_000);
});

describe("a log follow opened on a replica that does not hold the agent", () => {
  it("sees the owner's tail and every line written on the agent afterwards", async () => {
    const file = path.join(b.logDir, "box-notebook.log");
    await writeFile(file, "one\ntwo\nthree\n");
    const tail = await fetch(`${a.url}/v1/vms/box/logs?lines=2`, {
      headers: { authorization: `Bearer ${user}` },
    });
    expect(tail.status).toBe(200);
    expect(tail.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await tail.text()).toBe("two\nthree\n");

    const abort = new AbortController();
    const response = await fetch(`${a.url}/v1/vms/box/logs?follow=1&lines=1&format=ndjson`, {
      headers: { authorization: `Bearer ${user}` },
      signal: abort.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/ndjson/);
    const lines: string[] = [];
    const waiters = new Waiters();
    const reading = (async () => {
      let buffer = "";
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        buffer += Buffer.from(chunk).toString("utf8");
        for (let at = buffer.indexOf("\n"); at >= 0; at = buffer.indexOf("\n")) {
          lines.push((JSON.parse(buffer.slice(0, at)) as { line: string }).line);
          buffer = buffer.slice(at + 1);
        }
        waiters.notify();
      }
    })().catch(() => undefined);
    await waiters.until(() => lines.length === 1 || undefined, "the tail", 10_000);
    await appendFile(file, "four\nfive\n");
    await waiters.until(() => lines.length === 3 || undefined, "the new lines", 10_000);
    expect(lines).toEqual(["three", "four", "five"]);
    abort.abort();
    await reading;
    // The owner closes its stream once the relay's request goes away.
    await eventually(
      async () => b.controller.app.nbfleet.logs.openCount,
      (n) => n === 0,
    );
  });

  it("lets the owner cut off a follower on A that stops reading, without A holding its lines", async () => {
    const file = path.join(b.logDir, "box-notebook.log");
    await writeFile(file, "");
    const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
      http
        .get(
          `${a.url}/v1/vms/box/logs?follow=1&lines=0`,
          { headers: { authorization: `Bearer ${user}` } },
          resolve,
        )
        .on("error", reject);
    });
    expect(response.statusCode).toBe(200);
    response.pause();
    await eventually(
      async () => b.controller.app.nbfleet.logs.openCount,
      (n) => n === 1,
    );
    const line = `${"x".repeat(1000)}\n`;
    const chunk = line.repeat(1024);
    for (let i = 0; i < 48; i++) await appendFile(file, chunk);
    // 48 MiB written for a client that reads nothing: B's cut-off for followers that stop
    // reading (8 MiB unsent) applies through the relay, so its stream ends.
    await eventually(
      async () => b.controller.app.nbfleet.logs.openCount,
      (n) => n === 0,
      30_000,
    );
    response.destroy();
  }, 60_000);

  it("passes on the owner's refusal of an unknown VM and of a missing token", async () => {
    const missing = await fetch(`${a.url}/v1/vms/nope/logs`, {
      headers: { authorization: `Bearer ${user}` },
    });
    expect(missing.status).toBe(404);
    const anonymous = await fetch(`${a.url}/v1/vms/box/logs`);
    expect(anonymous.status).toBe(401);
  });
});

describe("the internal relay routes", () => {
  const url = "/internal/v1/vms/box/logs?lines=1";
  const signed = async (tokenId: string, target: string, path = url) => {
    const secret = await loadReplicaSecret(b.controller.app.nbfleet.store.db);
    return relayAuthorization(secret, { method: "GET", url: path, target, tokenId });
  };

  it("refuse no secret, a wrong secret, a user's admin token, a replay, another replica's request", async () => {
    const at = (authorization?: string) =>
      fetch(`${b.controller.url}${url}`, { headers: authorization ? { authorization } : {} });
    const none = await at();
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe("NBF_AUTH_REQUIRED");
    expect((await at(`Bearer ${user}`)).status).toBe(401);
    expect((await at(`Bearer ${b.controller.adminToken}`)).status).toBe(401);
    const forged = (await signed(userId, b.controller.app.nbfleet.relay.replicaId)).replace(
      /mac=[0-9a-f]+/,
      `mac=${"0".repeat(64)}`,
    );
    const wrong = await at(forged);
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe("NBF_AUTH_INVALID");
    const good = await signed(userId, b.controller.app.nbfleet.relay.replicaId);
    expect((await at(good)).status).toBe(200);
    expect((await at(good)).status).toBe(401);
    expect((await at(await signed(userId, a.app.nbfleet.relay.replicaId))).status).toBe(401);
    // Over WebSocket too.
    const ws = new WebSocket(`${b.controller.url.replace(/^http/, "ws")}/internal/v1/vms/box/shell`, {
      headers: { authorization: `Bearer ${b.controller.adminToken}` },
    });
    const status = await new Promise<number>((resolve) => {
      ws.once("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
      ws.once("open", () => resolve(101));
      ws.once("error", () => resolve(-1));
    });
    ws.terminate();
    expect(status).toBe(401);
  });

  it("check the relayed token's role in the database", async () => {
    const viewerId = (await b.controller.app.nbfleet.store.tokens.list()).find(
      (t) => t.role === "viewer",
    )!.id;
    const shell = "/internal/v1/vms/box/shell";
    const target = b.controller.app.nbfleet.relay.replicaId;
    const asViewer = await fetch(`${b.controller.url}${shell}`, {
      headers: { authorization: await signed(viewerId, target, shell) },
    });
    expect(asViewer.status).toBe(403);
    const ghost = await fetch(`${b.controller.url}${url}`, {
      headers: { authorization: await signed("tok_revoked", target) },
    });
    expect(ghost.status).toBe(401);
  });

  it("share one secret through the database", async () => {
    const rows = await a.app.nbfleet.store.db
      .selectFrom("cluster_settings")
      .select("value")
      .where("name", "=", REPLICA_SECRET_SETTING)
      .execute();
    expect(rows).toHaveLength(1);
    expect(Buffer.from(rows[0]!.value, "base64url")).toHaveLength(32);
  });
});

describe("a VM whose agent is held by a replica that is gone", () => {
  it("gets the offline-agent error quickly, whether the replica's heartbeat is stale or its port closed", async () => {
    // Created through B, whose provider starts no agent for it.
    const created = await call(b.controller.app, "POST", "/v1/vms", {
      token: user,
      body: { name: "lost", password: "a-long-password" },
    });
    expect(created.statusCode).toBe(201);
    await a.app.nbfleet.store.writer.flush();
    const { db } = a.app.nbfleet.store;
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as net.AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const dead = async (heartbeatAt: Date) => {
      await db.deleteFrom("replicas").where("id", "=", "rep_gone").execute();
      await db
        .insertInto("replicas")
        .values({
          id: "rep_gone",
          url: `http://127.0.0.1:${port}`,
          version: "test",
          started_at: heartbeatAt.toISOString(),
          heartbeat_at: heartbeatAt.toISOString(),
          agents: 1,
        })
        .execute();
      await db
        .updateTable("vm_status")
        .set({ replica_id: "rep_gone" })
        .where("vm_name", "=", "lost")
        .execute();
    };
    for (const heartbeatAt of [new Date(Date.now() - 3 * 600_000 - 1000), new Date()]) {
      await dead(heartbeatAt);
      const started = Date.now();
      const shell = await RecordedTerminal.open({ baseUrl: a.url, token: user, vm: "lost" }).catch(
        (e: CliError) => e,
      );
      expect((shell as CliError).code).toBe("NBF_AGENT_NOT_CONNECTED");
      const logs = await fetch(`${a.url}/v1/vms/lost/logs`, { headers: { authorization: `Bearer ${user}` } });
      expect(logs.status).toBe(409);
      expect(((await logs.json()) as { error: { code: string } }).error.code).toBe("NBF_AGENT_NOT_CONNECTED");
      expect(Date.now() - started).toBeLessThan(2000);
    }
  });
});

describe("the relay's deadline for a replica that accepts connections but never answers", () => {
  it("gives the offline-agent error once it passes", async () => {
    const hung = net.createServer(() => undefined);
    await new Promise<void>((resolve) => hung.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(hung.address() as net.AddressInfo).port}`;
    const context = a.app.nbfleet;
    const relay = new StreamRelay({
      settings: context.settings,
      store: context.store,
      gateway: context.gateway,
      log: a.app.log,
      replicaId: () => context.relay.replicaId,
      clock: context.cluster.clock,
      answerTimeoutMs: 500,
    });
    await relay.start();
    const peer = { id: "rep_hung", url, keySha256: null };
    const socket = new net.Socket();
    const request = {
      params: { name: "box" },
      url: "/v1/vms/box/shell",
      headers: {},
      principal: (await context.store.tokens.get(userId))!,
      raw: { socket },
    };
    let started = Date.now();
    const shell = await relay.openShell(peer, request).catch((error: NbfError) => error);
    expect((shell as NbfError).code).toBe("NBF_AGENT_NOT_CONNECTED");
    expect(Date.now() - started).toBeLessThan(2000);
    started = Date.now();
    const logs = await relay.relayLogs(peer, request, {} as never).catch((error: NbfError) => error);
    expect((logs as NbfError).code).toBe("NBF_AGENT_NOT_CONNECTED");
    expect(Date.now() - started).toBeLessThan(2000);
    hung.close();
  });
});
