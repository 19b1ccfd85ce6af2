/**
 * Terminal sessions end to end through the real controller and a real agent link with a real
 * node-pty (the agent's core is a fake: no Jupyter needed for a shell).
 */
import { createHash, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import {
  CAPABILITY_PTY,
  PROTOCOL_VERSION,
  PTY_CHUNK_BYTES,
  TerminalCloseCode,
  type TerminalSessionView,
} from "@nbfleet/shared";
import { call } from "@nbfleet/testkit/http";
import { pidAlive as alive } from "@nbfleet/testkit/processes";
import type { RawAgent } from "@nbfleet/testkit/raw-agent";
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { type Fleet, RecordedTerminal, startFleet } from "@nbfleet/testkit/terminal-fleet";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";
import type { CliError } from "../../cli/client.js";
import { TerminalConnection } from "../../cli/terminal-client.js";

let fleet: Fleet | undefined;
afterEach(async () => {
  await fleet?.close();
  fleet = undefined;
});

function shell(f: Fleet, vm: string, extra: Record<string, unknown> = {}, token = f.controller.adminToken) {
  return RecordedTerminal.open({ baseUrl: f.controller.url, token, vm, ...extra });
}

type Paused = { _socket: { pause(): void; resume(): void } };
const socketOf = (ws: unknown) => (ws as Paused)._socket;

/** A raw agent with terminals: every pty.open is answered as started; the rest is the test's. */
async function rawPtyAgent(f: Fleet, vm: string): Promise<RawAgent> {
  const raw = await f.addRawVm(vm, [CAPABILITY_PTY]);
  raw.ws.on("message", (data) => {
    const message = JSON.parse(String(data));
    if (message.type === "pty.open")
      agentSays(raw, { type: "pty.opened", session: message.session, pid: 4242 });
  });
  return raw;
}

function agentSays(raw: RawAgent, body: Record<string, unknown>): void {
  raw.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, id: `m-${Math.random()}`, ...body }));
}

const received = (raw: RawAgent, type: string) =>
  raw.messages.filter((m): m is Record<string, unknown> => (m as { type: string }).type === type);

async function audit(f: Fleet, session: string): Promise<TerminalSessionView> {
  return eventually(
    async () => {
      const res = await call(f.controller.app, "GET", "/v1/terminal-sessions?vm=box", {
        token: f.controller.adminToken,
      });
      return (res.json() as { items: TerminalSessionView[] }).items.find((s) => s.id === session)!;
    },
    (row) => row?.closedAt !== null && row?.closedAt !== undefined,
  );
}

describe("GET /v1/vms/{name}/shell", () => {
  it("resizes: `stty size` shows the new size", async () => {
    fleet = await startFleet();
    await fleet.addVm("box");
    const t = await shell(fleet, "box", { cols: 80, rows: 24 });
    t.connection.input("stty size\r");
    await t.waitText(/\D24 80\r\n/);
    const from = t.text().length;
    t.connection.resize(150, 50);
    t.connection.input("stty size\r");
    await t.waitText(/\D50 150\r\n/, { from });
  });

  it("Ctrl-C interrupts a running command and the prompt comes back at once", async () => {
    fleet = await startFleet();
    await fleet.addVm("box");
    const t = await shell(fleet, "box");
    t.connection.input("sleep 30; echo slept-through\r");
    await t.waitText(/sleep 30/);
    await sleep(300);
    const sent = Date.now();
    t.connection.input("\x03");
    t.connection.input("echo after-$((3*3))\r");
    await t.waitText(/after-9/, { timeoutMs: 3000 });
    expect(Date.now() - sent).toBeLessThan(2000);
    expect(t.text()).not.toMatch(/\nslept-through/);
  });

  it("lets a dropped client attach again and replays the output it missed; only its own token may", async () => {
    fleet = await startFleet();
    await fleet.addVm("box");
    const first = await shell(fleet, "box");
    first.connection.input("echo before-$((1+1))\r");
    await first.waitText(/before-2/);
    first.connection.drop();
    await first.waitClosed();
    // Output produced while nobody is attached is kept too.
    await sleep(100);

    const otherAdmin = await fleet.token("admin", "someone-else");
    const stranger = await shell(fleet, "box", { session: first.session }, otherAdmin).catch(
      (e: CliError) => e,
    );
    expect(stranger).toMatchObject({ code: "NBF_TERMINAL_SESSION_NOT_FOUND" });

    const again = await shell(fleet, "box", { session: first.session, cols: 90, rows: 20 });
    expect(again.connection.session).toMatchObject({ session: first.session, reattached: true });
    expect(again.connection.session.replayedBytes).toBeGreaterThan(0);
    await again.waitText(/before-2/);
    const from = again.text().length;
    again.connection.input("echo again-$((2+2)); stty size\r");
    await again.waitText(/again-4[\s\S]*20 90/, { from });
    again.connection.input("exit\r");
    await again.waitFrame("exit");
    const row = await audit(fleet, first.session);
    expect(row.attaches).toBe(2);
  });

  it("tells the client clearly when the agent vanishes mid-session, and the shell is gone", async () => {
    fleet = await startFleet();
    const agent = await fleet.addVm("box");
    const t = await shell(fleet, "box");
    t.connection.input("echo pid=$$\r");
    const pid = Number(/pid=(\d+)/.exec(await t.waitText(/pid=\d+/))![1]);
    expect(alive(pid)).toBe(true);
    await agent.link.stop();
    const error = await t.waitFrame("error");
    expect(error.code).toBe("NBF_AGENT_NOT_CONNECTED");
    expect(error.message).toMatch(/agent disconnected.*terminal session ended/);
    expect((await t.waitClosed()).code).toBe(TerminalCloseCode.agentGone);
    expect((await audit(fleet, t.session)).endReason).toBe("agent_gone");
    const deadline = Date.now() + 5000;
    while (alive(pid) && Date.now() < deadline) await sleep(50);
    expect(alive(pid)).toBe(false);
  });

  it("refuses viewer and operator tokens before the upgrade, and plain HTTP", async () => {
    fleet = await startFleet();
    await fleet.addVm("box");
    for (const role of ["viewer", "operator"] as const) {
      const token = await fleet.token(role);
      const refused = await shell(fleet, "box", {}, token).catch((e: CliError) => e);
      expect(refused).toMatchObject({ code: "NBF_FORBIDDEN" });
      expect((refused as CliError).message).toMatch(new RegExp(`role ${role} may not .*needs role admin`));
    }
    const plain = await call(fleet.controller.app, "GET", "/v1/vms/box/shell", {
      token: fleet.controller.adminToken,
    });
    expect(plain.statusCode).toBe(426);
    expect(plain.json().error.code).toBe("NBF_WEBSOCKET_REQUIRED");
    const list = await call(fleet.controller.app, "GET", "/v1/terminal-sessions", {
      token: await fleet.token("viewer", "v2"),
    });
    expect(list.statusCode).toBe(403);
    expect(fleet.controller.app.nbfleet.terminals.liveCount("box")).toBe(0);
  });

  it("says why before the upgrade: unknown VM, agent offline, agent without terminals, session cap", async () => {
    fleet = await startFleet({ terminalMaxSessionsPerVm: 2 });
    await fleet.addVm("box");
    await expect(shell(fleet, "ghost")).rejects.toMatchObject({ code: "NBF_VM_NOT_FOUND", exitCode: 3 });
    await fleet.addVm("old", null);
    await expect(shell(fleet, "old")).rejects.toMatchObject({ code: "NBF_AGENT_UNSUPPORTED" });
    await fleet.agents.get("old")!.link.stop();
    await eventually(
      async () => fleet!.controller.app.nbfleet.gateway.isConnected("old"),
      (connected) => !connected,
    );
    await expect(shell(fleet, "old")).rejects.toMatchObject({ code: "NBF_AGENT_NOT_CONNECTED" });

    const one = await shell(fleet, "box");
    const two = await shell(fleet, "box");
    const third = await shell(fleet, "box").catch((e: CliError) => e);
    expect(third).toMatchObject({ code: "NBF_TERMINAL_LIMIT" });
    expect((third as CliError).message).toMatch(/already has 2 terminal sessions \(limit 2\)/);
    one.connection.end();
    await one.waitFrame("exit");
    const four = await shell(fleet, "box");
    expect(four.session).not.toBe(two.session);
  });

  it("ends an idle session", async () => {
    fleet = await startFleet({ terminalIdleTimeoutSec: 1.5 });
    await fleet.addVm("box");
    const idle = await shell(fleet, "box");
    const error = await idle.waitFrame("error", 5000);
    expect(error).toMatchObject({ code: "NBF_TERMINAL_IDLE" });
    expect((await idle.waitClosed()).code).toBe(TerminalCloseCode.idle);
    expect((await audit(fleet, idle.session)).endReason).toBe("idle");
  });

  // A fleet of its own: under load a login shell can take longer than a short idle timeout to
  // answer its first line, and the session was then ended as idle before it printed its pid.
  it("ends a session nobody attached to again, killing the process", async () => {
    fleet = await startFleet({ terminalDetachedTimeoutSec: 0.4 });
    await fleet.addVm("box");
    const left = await shell(fleet, "box");
    left.connection.input("echo pid=$$\r");
    const pid = Number(/pid=(\d+)/.exec(await left.waitText(/pid=\d+/))![1]);
    left.connection.detach();
    expect((await audit(fleet, left.session)).endReason).toBe("detached");
    const deadline = Date.now() + 5000;
    while (alive(pid) && Date.now() < deadline) await sleep(50);
    expect(alive(pid)).toBe(false);
  });

  it("runs a command without a tty: stdout and stderr apart, stdin to eof, exit codes 0, 3 and 127", async () => {
    fleet = await startFleet();
    await fleet.addVm("box");
    const run = async (command: string, stdin?: string) => {
      const t = await shell(fleet!, "box", { command });
      expect(t.connection.session.tty).toBe(false);
      if (stdin !== undefined) t.connection.input(stdin);
      t.connection.eof();
      const exit = await t.waitFrame("exit");
      await t.waitClosed();
      return { exit, stdout: t.text("stdout"), stderr: t.text("stderr"), session: t.session };
    };
    const ok = await run("echo to-out; echo to-err >&2");
    expect(ok).toMatchObject({ exit: { exitCode: 0 }, stdout: "to-out\n", stderr: "to-err\n" });
    expect((await run("exit 3")).exit.exitCode).toBe(3);
    const missing = await run("no-such-command-nbfleet");
    expect(missing.exit.exitCode).toBe(127);
    expect(missing.stderr).toMatch(/not found/);
    expect((await run("tr a-z A-Z", "from stdin\n")).stdout).toBe("FROM STDIN\n");
    const row = await audit(fleet, ok.session);
    expect(row).toMatchObject({
      kind: "exec",
      tty: false,
      command: "echo to-out; echo to-err >&2",
      exitCode: 0,
    });
  });

  it("stops reading the process while the client does not read, and loses nothing", async () => {
    fleet = await startFleet();
    await fleet.addVm("box");
    const total = 30_000_000;
    const t = await shell(fleet, "box", { command: `head -c ${total} /dev/zero | tr '\\0' x` });
    t.connection.eof();
    const [owner] = await fleet.controller.app.nbfleet.store.tokens.list();
    const session = fleet.controller.app.nbfleet.terminals.find(t.session, "box", owner!);
    const socket = (t.connection as unknown as { ws: { _socket: { pause(): void; resume(): void } } }).ws
      ._socket;
    socket.pause();
    await sleep(1500);
    const stalled = session.bytesOut;
    await sleep(500);
    // The process is held back (pty.flow) instead of its output piling up in the controller.
    expect(session.bytesOut).toBe(stalled);
    expect(stalled).toBeLessThan(total / 2);
    expect(fleet.controller.app.nbfleet.gateway.isConnected("box")).toBe(true);
    socket.resume();
    expect((await t.waitFrame("exit", 60_000)).exitCode).toBe(0);
    expect(t.chunks.reduce((sum, c) => sum + c.data.length, 0)).toBe(total);
  });

  it("stops reading the client while the agent does not read, and every byte arrives once it reads", async () => {
    // Pings every 10 s: an agent that reads nothing also answers no ping, and would be dropped.
    fleet = await startFleet({ pingIntervalSec: 10 });
    const agent = await rawPtyAgent(fleet, "box");
    const t = await shell(fleet, "box", { command: "cat > upload.bin" });
    const [owner] = await fleet.controller.app.nbfleet.store.tokens.list();
    const session = fleet.controller.app.nbfleet.terminals.find(t.session, "box", owner!);
    socketOf(agent.ws).pause();
    const total = 20 * 1024 * 1024;
    const upload = randomBytes(total);
    for (let at = 0; at < total; at += 512 * 1024) t.connection.input(upload.subarray(at, at + 512 * 1024));
    await sleep(1500);
    // More than the agent's send queue holds (4 MiB) would have closed its link with 1013.
    expect(fleet.controller.app.nbfleet.gateway.isConnected("box")).toBe(true);
    expect(t.closed).toBeNull();
    const stalled = session.bytesIn;
    await sleep(300);
    expect(session.bytesIn).toBe(stalled);
    expect(stalled).toBeLessThan(total / 2);

    socketOf(agent.ws).resume();
    const inputs = await eventually(
      async () => received(agent, "pty.input"),
      (messages) => messages.reduce((sum, m) => sum + (String(m.data).length * 3) / 4, 0) >= total,
      60_000,
      100,
    );
    const arrived = Buffer.concat(inputs.map((m) => Buffer.from(String(m.data), "base64")));
    expect(arrived.length).toBe(total);
    const digest = (data: Buffer) => createHash("sha256").update(data).digest("hex");
    expect(digest(arrived)).toBe(digest(upload));
    expect(inputs.every((m) => m.session === t.session)).toBe(true);
    expect(fleet.controller.app.nbfleet.gateway.isConnected("box")).toBe(true);
    expect(session.bytesIn).toBe(total);
  });

  it("holds input and stops reading the client while the agent says the process does not read it (pty.inputFlow)", async () => {
    fleet = await startFleet({ pingIntervalSec: 10 });
    const agent = await rawPtyAgent(fleet, "box");
    // The agent may send it: this controller said it takes it.
    expect(received(agent, "welcome")[0]).toMatchObject({
      features: expect.arrayContaining(["pty.inputFlow"]),
    });
    const t = await shell(fleet, "box", { command: "sleep 2; cat > upload.bin" });
    const [owner] = await fleet.controller.app.nbfleet.store.tokens.list();
    const session = fleet.controller.app.nbfleet.terminals.find(t.session, "box", owner!);
    const inputBytes = () =>
      received(agent, "pty.input").reduce((sum, m) => sum + Buffer.byteLength(String(m.data), "base64"), 0);
    const total = 20 * 1024 * 1024;
    const upload = randomBytes(total);
    const first = 64 * 1024;
    t.connection.input(upload.subarray(0, first));
    await eventually(
      async () => inputBytes(),
      (bytes) => bytes === first,
    );
    agentSays(agent, { type: "pty.inputFlow", session: t.session, paused: true });
    await sleep(300);
    for (let at = first; at < total; at += 512 * 1024)
      t.connection.input(upload.subarray(at, at + 512 * 1024));
    await sleep(1500);
    // Nothing more went to the agent, and the client was not read beyond what was in flight.
    expect(inputBytes()).toBe(first);
    expect(session.bytesIn).toBeLessThan(total / 4);
    const stalled = session.bytesIn;
    await sleep(300);
    expect(session.bytesIn).toBe(stalled);
    expect(t.closed).toBeNull();

    agentSays(agent, { type: "pty.inputFlow", session: t.session, paused: false });
    const inputs = await eventually(
      async () => received(agent, "pty.input"),
      (messages) =>
        messages.reduce((sum, m) => sum + Buffer.byteLength(String(m.data), "base64"), 0) >= total,
      60_000,
      100,
    );
    const arrived = Buffer.concat(inputs.map((m) => Buffer.from(String(m.data), "base64")));
    const digest = (data: Buffer) => createHash("sha256").update(data).digest("hex");
    expect(arrived.length).toBe(total);
    expect(digest(arrived)).toBe(digest(upload));
    expect(session.bytesIn).toBe(total);

    // Paused again, then the process ends: the session ends at once, the held input dropped.
    agentSays(agent, { type: "pty.inputFlow", session: t.session, paused: true });
    await sleep(100);
    t.connection.input(Buffer.from("held\n"));
    agentSays(agent, { type: "pty.exit", session: t.session, exitCode: 0, signal: null });
    expect((await t.waitClosed()).code).toBe(TerminalCloseCode.exited);
    expect(received(agent, "pty.input").length).toBe(inputs.length);
    expect(fleet.controller.app.nbfleet.gateway.isConnected("box")).toBe(true);
  });

  it("takes pty.inputFlow only for a session of the agent's own machine", async () => {
    fleet = await startFleet({ pingIntervalSec: 10 });
    const victim = await rawPtyAgent(fleet, "box");
    const other = await rawPtyAgent(fleet, "other");
    const t = await shell(fleet, "box", { command: "cat" });
    agentSays(other, { type: "pty.inputFlow", session: t.session, paused: true });
    await sleep(300);
    t.connection.input(Buffer.from("still flows\n"));
    await eventually(
      async () => received(victim, "pty.input").map((m) => Buffer.from(String(m.data), "base64").toString()),
      (texts) => texts.join("") === "still flows\n",
    );
    // Ignored, not refused: a valid message of a known type about a session that is not its own.
    expect(fleet.controller.app.nbfleet.gateway.isConnected("other")).toBe(true);
    // A frame that does not fit the schema closes the agent's link, as every agent frame does.
    agentSays(other, { type: "pty.inputFlow", session: t.session, paused: "yes" });
    expect((await other.closed).code).toBe(4004);
    expect(fleet.controller.app.nbfleet.gateway.isConnected("box")).toBe(true);
  });

  it("detaches a client that does not read when the agent ignores pty.flow; the session goes on", async () => {
    fleet = await startFleet({ pingIntervalSec: 10 });
    const agent = await rawPtyAgent(fleet, "box");
    const t = await shell(fleet, "box", { command: "yes" });
    const [owner] = await fleet.controller.app.nbfleet.store.tokens.list();
    const session = fleet.controller.app.nbfleet.terminals.find(t.session, "box", owner!);
    socketOf((t.connection as unknown as { ws: unknown }).ws).pause();
    const chunk = Buffer.alloc(PTY_CHUNK_BYTES, "y").toString("base64");
    let sent = 0;
    while (session.attached && sent < 64 * 1024 * 1024) {
      for (let i = 0; i < 16; i++)
        agentSays(agent, { type: "pty.output", session: t.session, data: chunk, stream: "stdout" });
      sent += 16 * PTY_CHUNK_BYTES;
      await sleep(5);
    }
    expect(session.attached).toBe(false);
    socketOf((t.connection as unknown as { ws: unknown }).ws).resume();
    expect(received(agent, "pty.flow")[0]).toMatchObject({ paused: true });
    expect((await t.waitClosed()).code).toBe(TerminalCloseCode.slowClient);
    expect(t.frames.at(-1)).toMatchObject({ type: "error", code: "NBF_TERMINAL_CLIENT_TOO_SLOW" });
    expect(t.frames.at(-1)).toMatchObject({ message: expect.stringMatching(/unread.*attach again/) });
    // Only the client was let go: the agent's link and the session are still there.
    expect(fleet.controller.app.nbfleet.gateway.isConnected("box")).toBe(true);
    expect(session.state).toBe("open");
    const again = await shell(fleet, "box", { session: t.session });
    expect(again.connection.session).toMatchObject({ session: t.session, reattached: true });
    agentSays(agent, {
      type: "pty.output",
      session: t.session,
      data: Buffer.from("after\n").toString("base64"),
      stream: "stdout",
    });
    await again.waitText(/after\n/);
  });
});

// The audit rows are the store's part of a terminal session: these run on both dialects.
describe.each(STORE_DIALECTS)("terminal audit on %s", (dialect) => {
  it("round-trips keystrokes through controller and agent, then reports the exit and audits it", async () => {
    fleet = await startFleet(await freshStoreLocation(dialect));
    await fleet.addVm("box");
    const t = await shell(fleet, "box", { cols: 100, rows: 30 });
    expect(t.connection.session).toMatchObject({ type: "session", vm: "box", tty: true, reattached: false });
    t.connection.input("echo hi-$((40+2)) term=$TERM\r");
    await t.waitText(/hi-42 term=xterm-256color/);
    t.connection.input("exit 7\r");
    expect(await t.waitFrame("exit")).toEqual({ type: "exit", exitCode: 7, signal: null });
    expect((await t.waitClosed()).code).toBe(TerminalCloseCode.exited);

    const row = await audit(fleet, t.session);
    expect(row).toMatchObject({
      vmName: "box",
      kind: "shell",
      tty: true,
      exitCode: 7,
      endReason: "exited",
      attaches: 1,
      command: null,
    });
    expect(row.tokenName).toBeTruthy();
    expect(row.durationMs).toBeGreaterThan(0);
    expect(row.bytesIn).toBeGreaterThan(10);
    expect(row.bytesOut).toBeGreaterThan(10);
    await fleet.controller.app.nbfleet.store.writer.flush();
    const events = await fleet.controller.app.nbfleet.store.events.list({ vmName: "box", limit: 100 });
    expect(events.map((e) => e.kind)).toEqual(expect.arrayContaining(["terminal.opened", "terminal.closed"]));
  });

  it("ends live sessions when the controller shuts down, closing their audit rows", async () => {
    const location = await freshStoreLocation(dialect);
    fleet = await startFleet(location);
    await fleet.addVm("box");
    const t = await shell(fleet, "box");
    const { store } = fleet.controller.app.nbfleet;
    const closing = fleet.controller.app.close();
    expect((await t.waitClosed()).code).toBe(TerminalCloseCode.goingAway);
    expect(t.frames.at(-1)).toMatchObject({ type: "error", code: "NBF_CONTROLLER_STOPPING" });
    await closing;
    // The store is closed now; the row was written before it closed (checked through a new controller).
    void store;
    const again = await (await import("@nbfleet/testkit/controller")).startTestController({
      settings: location,
    });
    try {
      const row = await again.app.nbfleet.store.terminalSessions.get(t.session);
      expect(row).toMatchObject({ endReason: "controller_stopped" });
      expect(row?.durationMs).not.toBeNull();
    } finally {
      await again.close();
    }
    fleet.controller.close = async () => {};
  });
});

describe("TerminalConnection", () => {
  it("turns an unreachable controller into a clear error", async () => {
    const error = await TerminalConnection.open(
      { baseUrl: "http://127.0.0.1:1", token: "nbf_x", vm: "box" },
      { output: () => {}, closed: () => {} },
    ).catch((e: CliError) => e);
    expect(error).toMatchObject({ code: "NBF_CONTROLLER_UNREACHABLE" });
  });
});
