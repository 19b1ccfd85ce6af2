import { appendFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  CAPABILITY_LOGS_FOLLOW,
  CAPABILITY_PTY,
  FEATURE_PTY_INPUT_FLOW,
  PTY_CHUNK_BYTES,
} from "@nbfleet/shared";
import { FakeController } from "@nbfleet/testkit/fake-controller";
import { FakeCore } from "@nbfleet/testkit/fake-core";
import { type LinkHarness, startLink } from "@nbfleet/testkit/link-harness";
import { pidAlive as alive } from "@nbfleet/testkit/processes";
import { testShellTarget } from "@nbfleet/testkit/shell-target";
import { afterEach, describe, expect, it } from "vitest";
import { AgentStreams } from "../streams/agent-streams.js";

let fake: FakeController;
let harness: LinkHarness | undefined;
let dir: string | undefined;

afterEach(async () => {
  await harness?.stop();
  harness = undefined;
  await fake?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

async function connected(streams?: AgentStreams, features?: string[]) {
  fake = await FakeController.start(features ? { features } : {});
  harness = startLink({
    url: fake.url,
    core: new FakeCore(),
    bootstrapToken: "nbfb_any-token-accepted-here",
    ...(streams ? { streams } : {}),
  });
  await fake.waitForWelcomed();
  await harness.waitForStatus((s) => s.state === "connected", "connected");
}

async function streamsWithLogs() {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-link-streams-"));
  const logs = { notebook: path.join(dir, "notebook.log"), agent: path.join(dir, "agent.log") };
  const shellTarget = testShellTarget();
  const streams = new AgentStreams({
    target: () => shellTarget,
    logFile: (source) => logs[source],
    logPollMs: 20,
    killGraceMs: 200,
  });
  return { streams, logs };
}

describe("ControllerLink: terminal sessions and log streams", () => {
  // 2 MiB into a command that reads nothing yet: above the high-water mark, below the hard cap.
  async function unreadUpload() {
    const session = fake.openPty({ tty: false, command: "sleep 3; cat > /dev/null" });
    await fake.waitForMessage("pty.opened", (m) => m.session === session);
    const chunk = Buffer.alloc(PTY_CHUNK_BYTES, 0x61);
    for (let i = 0; i < 32; i++) fake.ptyInput(session, chunk);
    await sleep(500);
    return session;
  }

  it("asks a controller that takes pty.inputFlow to hold input the process has not read", async () => {
    const { streams } = await streamsWithLogs();
    await connected(streams, [FEATURE_PTY_INPUT_FLOW]);
    const session = await unreadUpload();
    expect(fake.messagesOf("pty.inputFlow")[0]?.message).toMatchObject({ session, paused: true });
    await fake.waitForMessage("pty.inputFlow", (m) => m.session === session && m.paused === false, {
      timeoutMs: 10_000,
    });
    fake.ptyInput(session, "", true);
    const exit = await fake.waitForMessage("pty.exit", (m) => m.session === session, { timeoutMs: 10_000 });
    expect(exit.message).toMatchObject({ exitCode: 0 });
    expect(fake.invalid).toEqual([]);
  });

  it("never sends pty.inputFlow to a controller whose welcome does not name it (older ones close on it)", async () => {
    const { streams } = await streamsWithLogs();
    await connected(streams);
    const session = await unreadUpload();
    fake.ptyInput(session, "", true);
    const exit = await fake.waitForMessage("pty.exit", (m) => m.session === session, { timeoutMs: 10_000 });
    // The hard cap is above what flow control needs: 2 MiB unread is held, not a reason to end.
    expect(exit.message).toMatchObject({ exitCode: 0 });
    expect(fake.messagesOf("pty.inputFlow")).toEqual([]);
  });

  it("announces the stream capabilities and runs a shell over the protocol, both ends validating", async () => {
    const { streams } = await streamsWithLogs();
    await connected(streams);
    expect(fake.messagesOf("hello")[0]!.message.capabilities).toEqual(
      expect.arrayContaining([CAPABILITY_PTY, CAPABILITY_LOGS_FOLLOW, "notebook.restart"]),
    );
    const session = fake.openPty({ cols: 100, rows: 30 });
    await fake.waitForMessage("pty.opened", (m) => m.session === session);
    fake.ptyInput(session, "stty size; echo done-$((2+3))\r");
    await fake.waitForPtyOutput(session, /30 100\r\n[\s\S]*done-5/);
    fake.ptyInput(session, "exit 4\r");
    expect((await fake.waitForPtyExit(session)).message).toMatchObject({ exitCode: 4, signal: null });
    expect(fake.invalid).toEqual([]);
  });

  it("ends every session when the controller vanishes, and serves the next connection afresh", async () => {
    const { streams } = await streamsWithLogs();
    await connected(streams);
    const session = fake.openPty();
    const opened = await fake.waitForMessage("pty.opened", (m) => m.session === session);
    fake.dropCurrent();
    const deadline = Date.now() + 5000;
    while (alive(opened.message.pid) && Date.now() < deadline) await sleep(50);
    expect(alive(opened.message.pid)).toBe(false);
    expect(streams.pty.size).toBe(0);

    await fake.waitForWelcomed(2);
    const again = fake.openPty({ tty: false, command: "echo again" });
    await fake.waitForPtyExit(again);
    expect(fake.ptyOutput(again, "stdout")).toBe("again\n");
  });

  it("tails and follows a log until logs.close", async () => {
    const { streams, logs } = await streamsWithLogs();
    await writeFile(logs.notebook, "one\ntwo\nthree\n");
    await connected(streams);
    fake.sendStream({ type: "logs.open", stream: "l1", source: "notebook", lines: 2, follow: true });
    await fake.waitFor(() => fake.logLines("l1").length === 2, "the tail");
    await appendFile(logs.notebook, "four\n");
    await fake.waitFor(() => fake.logLines("l1").length === 3, "the appended line");
    expect(fake.logLines("l1")).toEqual(["two", "three", "four"]);
    fake.sendStream({ type: "logs.close", stream: "l1" });
    const deadline = Date.now() + 5000;
    while (streams.logStreams > 0 && Date.now() < deadline) await sleep(20);
    expect(streams.logStreams).toBe(0);

    fake.sendStream({ type: "logs.open", stream: "l2", source: "agent", lines: 10, follow: false });
    await fake.waitForMessage("logs.end", (m) => m.stream === "l2");
    expect(fake.logLines("l2")).toEqual([]);
  });

  it("refuses terminals and log streams when it serves none, with a reason", async () => {
    await connected();
    expect(fake.messagesOf("hello")[0]!.message.capabilities).not.toContain(CAPABILITY_PTY);
    const session = fake.openPty();
    const exit = await fake.waitForPtyExit(session);
    expect(exit.message.error?.code).toBe("NBF_COMMAND_UNKNOWN");
    fake.sendStream({ type: "logs.open", stream: "l3", source: "notebook", lines: 1, follow: false });
    expect((await fake.waitForMessage("logs.end")).message.error?.message).toMatch(
      /no terminal sessions or log streams/,
    );
  });
});
