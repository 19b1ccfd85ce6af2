import os from "node:os";
import path from "node:path";
import { setTimeout as sleep, setImmediate as turn } from "node:timers/promises";
import { PTY_CHUNK_BYTES } from "@nbfleet/shared";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { digestOf, digestOfFile } from "@nbfleet/testkit/digest";
import { pidAlive as alive } from "@nbfleet/testkit/processes";
import { testShellTarget } from "@nbfleet/testkit/shell-target";
import { Waiters } from "@nbfleet/testkit/waiters";
import { afterEach, describe, expect, it } from "vitest";
import type { StreamOut } from "../link/streams.js";
import { resolveRunAs } from "../profile/user.js";
import { PtyHost } from "./pty-host.js";

/** What a host sent, as the controller would see it; the tests wait on this record. */
class Recorder implements StreamOut {
  readonly sent: Array<Record<string, unknown>> = [];
  private readonly waiters = new Waiters();
  open = true;
  /** As a controller that takes pty.inputFlow (off: an older controller). */
  inputFlow = false;
  send(body: Record<string, unknown>): boolean {
    if (!this.open) return false;
    this.sent.push(body);
    this.waiters.notify();
    return true;
  }
  backlog(): number {
    return 0;
  }
  /** The pty.inputFlow messages of a session, in order. */
  inputFlows(session: string): boolean[] {
    return this.sent
      .filter((m) => m.type === "pty.inputFlow" && m.session === session)
      .map((m) => m.paused as boolean);
  }
  output(session: string, stream?: string): string {
    return Buffer.concat(
      this.sent
        .filter((m) => m.type === "pty.output" && m.session === session && (!stream || m.stream === stream))
        .map((m) => Buffer.from(m.data as string, "base64")),
    ).toString("utf8");
  }
  waitOutput(session: string, match: RegExp, from = 0, timeoutMs = 10_000): Promise<string> {
    return this.waiters.until(
      () => {
        const text = this.output(session).slice(from);
        return match.test(text) ? text : undefined;
      },
      `output matching ${match}`,
      timeoutMs,
    );
  }
  waitFor(type: string, session: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    return this.waiters.until(
      () => this.sent.find((m) => m.type === type && m.session === session),
      `${type} of ${session}`,
      timeoutMs,
    );
  }
}

const v = { v: "1.1", id: "m" };
let host: PtyHost;
afterEach(() => host?.closeAll());

function input(session: string, text: string, eof = false) {
  host.input({
    ...v,
    type: "pty.input",
    session,
    data: Buffer.from(text).toString("base64"),
    ...(eof ? { eof } : {}),
  });
}

describe("PtyHost with a real pseudo-terminal", () => {
  it("echoes what is typed and runs it in a login shell with TERM=xterm-256color", async () => {
    host = new PtyHost({ target: testShellTarget });
    const out = new Recorder();
    host.open({ ...v, type: "pty.open", session: "s1", tty: true, cols: 80, rows: 24 }, out);
    const opened = await out.waitFor("pty.opened", "s1");
    expect(opened.pid).toBeGreaterThan(1);
    input("s1", "echo term=$TERM sum=$((6*7))\r");
    // The typed line comes back as typed (the echo), then the shell's answer.
    await out.waitOutput("s1", /echo term=\$TERM sum=\$\(\(6\*7\)\)/);
    await out.waitOutput("s1", /term=xterm-256color sum=42/);
    input("s1", "exit 5\r");
    expect(await out.waitFor("pty.exit", "s1")).toMatchObject({ exitCode: 5, signal: null });
  });

  it("reports the new size to `stty size` after a resize", async () => {
    host = new PtyHost({ target: testShellTarget });
    const out = new Recorder();
    host.open({ ...v, type: "pty.open", session: "s2", tty: true, cols: 80, rows: 24 }, out);
    await out.waitFor("pty.opened", "s2");
    input("s2", "stty size\r");
    await out.waitOutput("s2", /\D24 80\r\n/);
    host.resize({ ...v, type: "pty.resize", session: "s2", cols: 132, rows: 43 });
    const from = out.output("s2").length;
    input("s2", "stty size\r");
    await out.waitOutput("s2", /\D43 132\r\n/, from);
  });

  it("interrupts a running command with Ctrl-C and gives the prompt back", async () => {
    host = new PtyHost({ target: testShellTarget });
    const out = new Recorder();
    host.open({ ...v, type: "pty.open", session: "s3", tty: true, cols: 80, rows: 24 }, out);
    await out.waitFor("pty.opened", "s3");
    input("s3", "sleep 30; echo slept-through\r");
    await out.waitOutput("s3", /sleep 30/);
    await sleep(200);
    const sent = Date.now();
    input("s3", "\x03");
    input("s3", "echo back-$((1+1))\r");
    await out.waitOutput("s3", /back-2/, 0, 3000);
    expect(Date.now() - sent).toBeLessThan(2000);
    expect(out.output("s3")).not.toMatch(/\nslept-through/);
  });

  it("runs the shell as the notebook's user, in its home", async () => {
    const user = await resolveRunAs({ isRoot: process.getuid?.() === 0, runAs: "nbfleet", allowRoot: false });
    host = new PtyHost({ target: () => ({ user }) });
    const out = new Recorder();
    host.open({ ...v, type: "pty.open", session: "s4", tty: true, cols: 80, rows: 24 }, out);
    await out.waitFor("pty.opened", "s4");
    input("s4", 'echo "who=$(id -un) groups=$(id -G) home=$HOME pwd=$PWD"\r');
    const expected = user ?? {
      user: os.userInfo().username,
      gid: os.userInfo().gid,
      home: os.userInfo().homedir,
    };
    const text = await out.waitOutput("s4", /who=\S+ groups=[\d ]+ home=\S+ pwd=\S+/);
    const [, who, groups, home, pwd] = /who=(\S+) groups=([\d ]+?) home=(\S+) pwd=(\S+)/.exec(text)!;
    expect(who).toBe(expected.user);
    expect(home).toBe(expected.home);
    expect(pwd).toBe(expected.home);
    if (user) expect(groups!.split(" ")).not.toContain("0");
  });

  it("runs a command without a tty: stdout and stderr apart, stdin until eof, the exit code", async () => {
    host = new PtyHost({ target: testShellTarget });
    const out = new Recorder();
    const run = (session: string, command: string) =>
      host.open({ ...v, type: "pty.open", session, tty: false, cols: 80, rows: 24, command }, out);
    run("e0", "echo out; echo err >&2");
    run("e3", "exit 3");
    run("e127", "no-such-command-nbfleet");
    run("cat", "tr a-z A-Z");
    await out.waitFor("pty.opened", "cat");
    input("cat", "piped text\n", true);
    expect(await out.waitFor("pty.exit", "e0")).toMatchObject({ exitCode: 0, signal: null });
    expect(out.output("e0", "stdout")).toBe("out\n");
    expect(out.output("e0", "stderr")).toBe("err\n");
    expect(await out.waitFor("pty.exit", "e3")).toMatchObject({ exitCode: 3 });
    expect(await out.waitFor("pty.exit", "e127")).toMatchObject({ exitCode: 127 });
    expect(out.output("e127", "stderr")).toMatch(/not found/);
    expect(await out.waitFor("pty.exit", "cat")).toMatchObject({ exitCode: 0 });
    expect(out.output("cat")).toBe("PIPED TEXT\n");
  });

  it("kills every session when the connection is gone", async () => {
    host = new PtyHost({ target: testShellTarget, killGraceMs: 200 });
    const out = new Recorder();
    host.open({ ...v, type: "pty.open", session: "k1", tty: true, cols: 80, rows: 24 }, out);
    host.open(
      { ...v, type: "pty.open", session: "k2", tty: false, cols: 80, rows: 24, command: "sleep 60" },
      out,
    );
    const pids = [
      (await out.waitFor("pty.opened", "k1")).pid,
      (await out.waitFor("pty.opened", "k2")).pid,
    ] as number[];
    out.open = false;
    host.closeAll();
    expect(host.size).toBe(0);
    const deadline = Date.now() + 5000;
    while (pids.some(alive) && Date.now() < deadline) await sleep(50);
    expect(pids.filter(alive)).toEqual([]);
  });

  it("closes one session on pty.close, answering with its exit", async () => {
    host = new PtyHost({ target: testShellTarget, killGraceMs: 200 });
    const out = new Recorder();
    host.open({ ...v, type: "pty.open", session: "c1", tty: true, cols: 80, rows: 24 }, out);
    await out.waitFor("pty.opened", "c1");
    host.close({ ...v, type: "pty.close", session: "c1" });
    const exit = await out.waitFor("pty.exit", "c1");
    expect(exit.exitCode === null ? exit.signal : exit.exitCode).toBeTruthy();
    expect(host.size).toBe(0);
  });

  it("answers a clear NBF_PTY_UNAVAILABLE when node-pty cannot be loaded, and honours the session cap", async () => {
    host = new PtyHost({
      target: testShellTarget,
      maxSessions: 1,
      loadPty: () =>
        import("./node-pty.js").then((m) => m.loadNodePty(() => Promise.reject(new Error("no pty.node")))),
    });
    const out = new Recorder();
    host.open({ ...v, type: "pty.open", session: "n1", tty: true, cols: 80, rows: 24 }, out);
    host.open({ ...v, type: "pty.open", session: "n2", tty: true, cols: 80, rows: 24 }, out);
    const refused = await out.waitFor("pty.exit", "n2");
    expect(refused).toMatchObject({ error: { code: "NBF_STREAM_LIMIT" } });
    const missing = await out.waitFor("pty.exit", "n1");
    expect(missing).toMatchObject({ exitCode: null, error: { code: "NBF_PTY_UNAVAILABLE" } });
    expect((missing.error as { message: string }).message).toMatch(/node-pty.*no pty.node/);
  });
});

describe("PtyHost input its process does not read", () => {
  const MiB = 1024 * 1024;
  /** What the agent holds in Buffers (a session's queued input is there). */
  const bufferBytes = () => process.memoryUsage().arrayBuffers;

  /** 1,000 frames of 64 KiB, as fast as a hostile or broken controller may send them. */
  function flood(session: string, text: string) {
    const data = Buffer.from(text.repeat(Math.ceil(PTY_CHUNK_BYTES / text.length)))
      .subarray(0, PTY_CHUNK_BYTES)
      .toString("base64");
    for (let i = 0; i < 1000; i++) host.input({ ...v, type: "pty.input", session, data });
  }

  async function expectEndedUnread(out: Recorder, session: string, pid: number) {
    expect(await out.waitFor("pty.exit", session)).toMatchObject({
      error: {
        code: "NBF_STREAM_LIMIT",
        message: expect.stringMatching(/has not read \d+ bytes of input sent to it \(at most 8388608/),
      },
    });
    expect(host.size).toBe(0);
    const deadline = Date.now() + 5000;
    while (alive(pid) && Date.now() < deadline) await sleep(50);
    expect(alive(pid)).toBe(false);
  }

  for (const tty of [false, true]) {
    it(`ends a session ${tty ? "in a tty" : "without a tty"} with NBF_STREAM_LIMIT, and holds at most about its cap (a controller without pty.inputFlow)`, async () => {
      host = new PtyHost({ target: testShellTarget, killGraceMs: 200 });
      const out = new Recorder();
      const session = tty ? "t-flood" : "p-flood";
      host.open({ ...v, type: "pty.open", session, tty, cols: 80, rows: 24, command: "sleep 15" }, out);
      const { pid } = (await out.waitFor("pty.opened", session)) as { pid: number };
      const before = bufferBytes();
      // Lines: a terminal's line discipline drops what cannot fit on one line, so only lines pile up.
      flood(session, "abcdefg\n");
      await sleep(200);
      expect(bufferBytes() - before).toBeLessThan(16 * MiB);
      await expectEndedUnread(out, session, pid);
      // Not to a controller that did not say it takes it: an older one would close the link.
      expect(out.inputFlows(session)).toEqual([]);
    });
  }

  for (const tty of [false, true]) {
    it(`asks the controller to hold input its process does not read yet ${tty ? "(a tty)" : "(pipes)"}, and for more once it reads`, async () => {
      host = new PtyHost({ target: testShellTarget });
      const out = new Recorder();
      out.inputFlow = true;
      // Removed after the file, passed or failed (temp-dirs-setup.ts).
      const file = path.join(makeDataDir("nbf-pty-upload-"), "upload");
      const session = tty ? "t-upload" : "p-upload";
      const command = `${tty ? "stty -echo; " : ""}sleep 2; cat > ${file}`;
      host.open({ ...v, type: "pty.open", session, tty, cols: 80, rows: 24, command }, out);
      await out.waitFor("pty.opened", session);
      // Lines, for a tty's line discipline; 4 times the input cap of before.
      const chunk = Buffer.from("0123456789abcdef".repeat(PTY_CHUNK_BYTES / 16).replace(/f/g, "\n"));
      const total = 4 * MiB;
      const upload = Buffer.alloc(total);
      const started = Date.now();
      // As a controller that honours it: nothing more is sent while the agent says paused.
      for (let sent = 0; sent < total; ) {
        await turn();
        if (out.inputFlows(session).at(-1) === true) {
          await sleep(5);
          continue;
        }
        chunk.copy(upload, sent);
        host.input({ ...v, type: "pty.input", session, data: chunk.toString("base64") });
        sent += chunk.length;
      }
      // The process slept through the first of it: input was held instead of sent on.
      const flows = out.inputFlows(session);
      expect(flows[0]).toBe(true);
      expect(flows.at(-1)).toBe(false);
      expect(Date.now() - started).toBeGreaterThan(1500);
      host.input({ ...v, type: "pty.input", session, data: "", eof: true });
      const exit = await out.waitFor("pty.exit", session, 30_000);
      expect(exit).toMatchObject({ exitCode: 0, signal: null });
      expect(exit.error).toBeUndefined();
      expect(await digestOfFile(file)).toEqual(digestOf(upload));
    }, 40_000);
  }

  it("keeps a session whose process reads what it is sent, however much that is", async () => {
    host = new PtyHost({ target: testShellTarget });
    const out = new Recorder();
    host.open(
      { ...v, type: "pty.open", session: "cat", tty: false, cols: 80, rows: 24, command: "cat" },
      out,
    );
    await out.waitFor("pty.opened", "cat");
    const echoed = () =>
      out.sent
        .filter((m) => m.type === "pty.output" && m.session === "cat")
        .reduce((bytes, m) => bytes + Buffer.byteLength(m.data as string, "base64"), 0);
    const data = Buffer.alloc(PTY_CHUNK_BYTES, 0x61).toString("base64");
    // Four times the cap in all, sent as fast as `cat` gives it back: never half the cap unread.
    for (let sent = PTY_CHUNK_BYTES; sent <= 4 * MiB; sent += PTY_CHUNK_BYTES) {
      host.input({ ...v, type: "pty.input", session: "cat", data });
      while (sent - echoed() > MiB / 2) await sleep(5);
    }
    host.input({ ...v, type: "pty.input", session: "cat", data: "", eof: true });
    expect(await out.waitFor("pty.exit", "cat")).toMatchObject({ exitCode: 0 });
    expect(echoed()).toBe(4 * MiB);
  });
});
