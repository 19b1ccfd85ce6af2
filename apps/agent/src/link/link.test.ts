import { COMMAND_NAMES, PROTOCOL_VERSION } from "@nbfleet/shared";
import { FakeController } from "@nbfleet/testkit/fake-controller";
import { FakeCore, fakeState } from "@nbfleet/testkit/fake-core";
import { type LinkHarness, startLink } from "@nbfleet/testkit/link-harness";
import { afterEach, describe, expect, it } from "vitest";

let fake: FakeController;
let harness: LinkHarness | undefined;

afterEach(async () => {
  await harness?.stop();
  harness = undefined;
  await fake?.close();
});

async function connected(core: FakeCore, options: { reportIntervalSec?: number } = {}) {
  fake = await FakeController.start(options);
  harness = startLink({ url: fake.url, core, bootstrapToken: "nbfb_any-token-accepted-here" });
  await fake.waitForWelcomed();
  await harness.waitForStatus((s) => s.state === "connected", "connected");
  return harness;
}

describe("ControllerLink: hello, reports and commands", () => {
  it("says hello with its identity, capabilities and the whole state", async () => {
    const core = new FakeCore();
    core.current = fakeState({ state: "running", pid: 777, restarts: 3 });
    const { link } = await connected(core);
    const [hello] = fake.messagesOf("hello");
    expect(hello!.message.v).toBe(PROTOCOL_VERSION);
    expect(hello!.message.state).toEqual(core.current);
    expect(hello!.message.capabilities).toEqual(COMMAND_NAMES);
    expect(hello!.message.agent).toMatchObject({ os: process.platform, arch: process.arch });
    expect(link.vmName).toBe("vm-1");
    expect(fake.invalid).toEqual([]);
  });

  it("acks a command at once, forwards its progress, and sends one result", async () => {
    const core = new FakeCore();
    let release!: () => void;
    core.handler = async (command, progress) => {
      progress("stopping the old server");
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      progress("waiting for /api");
      return { ok: true, data: { pid: 4243, name: command.name } };
    };
    await connected(core);
    const command = fake.command("notebook.restart", {});
    fake.send(command);
    const ack = await fake.waitForMessage("ack", (m) => m.commandId === command.id);
    await fake.waitForMessage("progress", (m) => m.commandId === command.id);
    expect(fake.messagesOf("result")).toEqual([]);
    release();
    const result = await fake.waitForMessage("result", (m) => m.commandId === command.id);
    expect(result.message).toMatchObject({ ok: true, data: { pid: 4243, name: "notebook.restart" } });
    const progress = fake.messagesOf("progress").filter((r) => r.message.commandId === command.id);
    expect(progress.map((r) => r.message.message)).toEqual(["stopping the old server", "waiting for /api"]);
    expect(ack.at).toBeLessThanOrEqual(progress[0]!.at);
    expect(progress[1]!.at).toBeLessThanOrEqual(result.at);
    expect(fake.messagesOf("result").filter((r) => r.message.commandId === command.id)).toHaveLength(1);
  });

  it("answers a repeated command id with the same result without running it again", async () => {
    const core = new FakeCore();
    let runs = 0;
    core.handler = async () => ({ ok: true, data: { run: ++runs } });
    await connected(core);
    const command = fake.command("notebook.stop", {});
    const first = await fake.sendCommand(command);
    const second = await fake.sendCommand(command);
    expect(second.message.data).toEqual(first.message.data);
    expect(second.message.data).toEqual({ run: 1 });
    expect(core.executed.filter((c) => c.id === command.id)).toHaveLength(1);
    expect(fake.messagesOf("ack").filter((r) => r.message.commandId === command.id)).toHaveLength(2);
  });

  it("sends a failed command's error code and message", async () => {
    const core = new FakeCore();
    core.handler = async () => ({
      ok: false,
      error: { code: "NBF_PORT_IN_USE", message: "port 9999 is taken" },
    });
    await connected(core);
    const result = await fake.sendCommand(fake.command("notebook.start", {}));
    expect(result.message).toMatchObject({
      ok: false,
      error: { code: "NBF_PORT_IN_USE", message: "port 9999 is taken" },
    });
  });

  it("answers a command it cannot run with a failed result instead of dropping it", async () => {
    const core = new FakeCore();
    await connected(core);
    fake.send({ v: PROTOCOL_VERSION, id: "cmd-future", type: "command", name: "agent.teleport", params: {} });
    fake.send({
      v: PROTOCOL_VERSION,
      id: "cmd-bad",
      type: "command",
      name: "logs.tail",
      params: { lines: 0 },
    });
    const unknown = await fake.waitForMessage("result", (m) => m.commandId === "cmd-future");
    const bad = await fake.waitForMessage("result", (m) => m.commandId === "cmd-bad");
    expect(unknown.message.error?.code).toBe("NBF_COMMAND_UNKNOWN");
    expect(unknown.message.error?.message).toContain("agent.teleport");
    expect(bad.message.error?.code).toBe("NBF_INVALID_INPUT");
    expect(bad.message.error?.message).toContain("lines");
    expect(core.executed).toEqual([]);
  });

  it("reports state changes coalesced, each report the whole state", async () => {
    const core = new FakeCore();
    await connected(core);
    const from = fake.messages.length;
    for (let restarts = 1; restarts <= 20; restarts++) core.setState(fakeState({ restarts }));
    const last = await fake.waitForMessage("state", (m) => m.state.notebook.restarts === 20, { from });
    const reports = fake.messagesOf("state").filter((r) => r.at <= last.at);
    // 20 changes in one tick: at most one report before the coalescing window and the one after it.
    expect(reports.length).toBeLessThanOrEqual(2);
    expect(last.message.state).toEqual(core.current);
  });

  it("reports the whole state at the steady interval from the welcome", async () => {
    const core = new FakeCore();
    await connected(core, { reportIntervalSec: 1 });
    const welcomedAt = fake.connections[0]!.welcomedAt!;
    const first = await fake.waitForMessage("state", () => true, { timeoutMs: 3000 });
    const second = await fake.waitForMessage("state", (_m, r) => r.at > first.at, { timeoutMs: 3000 });
    expect(first.at - welcomedAt).toBeGreaterThanOrEqual(900);
    expect(second.at - first.at).toBeGreaterThanOrEqual(900);
    expect(second.message.state).toEqual(core.current);
  });

  it("forwards events as they happen and stops cleanly on abort", async () => {
    const core = new FakeCore();
    const h = await connected(core);
    core.raise({ kind: "notebook.crashed", level: "warn", message: "exit code 1" });
    const event = await fake.waitForMessage("event");
    expect(event.message.event).toMatchObject({
      kind: "notebook.crashed",
      level: "warn",
      message: "exit code 1",
    });
    const connection = fake.connections[0]!;
    await h.stop();
    harness = undefined;
    await fake.waitForClosed(connection);
    expect(connection.closeCode).toBe(1000);
    expect(h.link.status).toEqual({ state: "stopped" });
    expect(core.subscribers).toBe(0);
  });
});
