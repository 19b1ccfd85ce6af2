import { setTimeout as sleep } from "node:timers/promises";
import { CloseCode, PROTOCOL_VERSION } from "@nbfleet/shared";
import { FakeController } from "@nbfleet/testkit/fake-controller";
import { FakeCore, fakeState } from "@nbfleet/testkit/fake-core";
import { type LinkHarness, startLink } from "@nbfleet/testkit/link-harness";
import { afterEach, describe, expect, it } from "vitest";
import type { LinkStatus } from "./link.js";

let fake: FakeController;
let harness: LinkHarness | undefined;

afterEach(async () => {
  await harness?.stop();
  harness = undefined;
  await fake?.close();
});

const TOKEN = "nbfb_any-token-accepted-here";
const TRY_LATER = { close: 1013, reason: "try again later" };
const waits = (h: LinkHarness) =>
  h.statuses.flatMap((s) => (s.status.state === "waiting" ? [s.status] : [])) as Array<
    Extract<LinkStatus, { state: "waiting" }>
  >;

describe("ControllerLink: reconnecting", () => {
  it("redials with growing backoff, says hello with the whole state again, then sends what it missed", async () => {
    fake = await FakeController.start();
    const core = new FakeCore();
    harness = startLink({ url: fake.url, core, bootstrapToken: TOKEN, random: () => 1 });
    await fake.waitForWelcomed(1);

    fake.answerHello = TRY_LATER;
    fake.dropCurrent();
    await fake.waitFor(() => fake.connections[2]?.closedAt, "two refused redials");
    // Raised while no controller listens: kept, not lost.
    core.setState(fakeState({ state: "backoff", pid: null, restarts: 5 }));
    core.raise({ kind: "notebook.crashed", level: "warn", message: "exit code 1" });
    core.raise({ kind: "notebook.restarting", message: "restart 5 in 2 s" });
    fake.answerHello = "welcome";

    const back = await fake.waitForWelcomed(2);
    const [hello] = fake.messagesOf("hello", back.id);
    expect(hello!.message.state).toEqual(core.current);
    expect(hello!.message.state.notebook.restarts).toBe(5);
    const crashed = await fake.waitForMessage("event", (m) => m.event.kind === "notebook.restarting");
    const events = fake.messagesOf("event", back.id).map((r) => r.message.event.kind);
    expect(events).toEqual(["notebook.crashed", "notebook.restarting"]);
    expect(crashed.at).toBeGreaterThanOrEqual(hello!.at);

    // Full jitter drawn at its ceiling (random = 1): the ceiling doubles from 20 ms per attempt.
    const delays = waits(harness).map((w) => w.retryInMs);
    expect(delays.slice(0, 3)).toEqual([20, 40, 80]);
    for (let i = 0; i < 3; i++) {
      const gap = fake.connections[i + 1]!.at - fake.connections[i]!.closedAt!;
      expect(gap).toBeGreaterThanOrEqual(delays[i]! - 5);
    }
  });

  it("starts the backoff over after a connection that lived longer than stableMs", async () => {
    fake = await FakeController.start();
    harness = startLink({
      url: fake.url,
      core: new FakeCore(),
      bootstrapToken: TOKEN,
      random: () => 1,
      timing: { stableMs: 150 },
    });
    await fake.waitForWelcomed(1);
    fake.dropCurrent();
    await fake.waitForWelcomed(2);
    await sleep(250); // the subject here is time passing: the second connection becomes stable
    fake.dropCurrent();
    await fake.waitForWelcomed(3);
    expect(waits(harness).map((w) => w.retryInMs)).toEqual([20, 20]);
  });

  it("delivers a result that finished while disconnected after the next welcome", async () => {
    fake = await FakeController.start();
    const core = new FakeCore();
    let release!: () => void;
    core.handler = () =>
      new Promise((resolve) => {
        release = () => resolve({ ok: true, data: { pid: 99 } });
      });
    harness = startLink({ url: fake.url, core, bootstrapToken: TOKEN });
    await fake.waitForWelcomed(1);
    const command = fake.command("notebook.restart", {});
    fake.send(command);
    await fake.waitForMessage("ack", (m) => m.commandId === command.id);
    fake.answerHello = TRY_LATER;
    fake.dropCurrent();
    await fake.waitFor(() => fake.connections[1]?.closedAt, "a refused redial");
    release();
    fake.answerHello = "welcome";
    const back = await fake.waitForWelcomed(2);
    const result = await fake.waitForMessage("result", (m) => m.commandId === command.id);
    expect(result.connection).toBe(back.id);
    expect(result.message).toMatchObject({ ok: true, data: { pid: 99 } });
  });

  it("gives up on a silent controller after 3 ping intervals and dials again", async () => {
    fake = await FakeController.start({ pingIntervalMs: 40 });
    fake.silent = true;
    harness = startLink({
      url: fake.url,
      core: new FakeCore(),
      bootstrapToken: TOKEN,
      timing: { pingIntervalMs: 100 },
    });
    const first = await fake.waitFor(() => fake.connections[0], "a first connection");
    fake.silent = false;
    await fake.waitForWelcomed(1);
    expect(first.welcomedAt).toBeNull();
    expect(first.closedAt! - first.at).toBeGreaterThanOrEqual(300);
    expect(first.closeCode).toBe(1006);
    const line = await harness.log.waitFor(/no ping or message from the controller/);
    expect(line.level).toBe("warn");
    expect(fake.messagesOf("hello", first.id)).toHaveLength(1);
  });

  it("keeps a quiet connection that is pinged", async () => {
    fake = await FakeController.start({ pingIntervalMs: 40 });
    harness = startLink({
      url: fake.url,
      core: new FakeCore(),
      bootstrapToken: TOKEN,
      timing: { pingIntervalMs: 100 },
    });
    await fake.waitForWelcomed(1);
    await sleep(600); // twice the dead-controller timeout with nothing but pings
    expect(fake.connections).toHaveLength(1);
    expect(fake.connections[0]!.closedAt).toBeNull();
  });

  it("after a protocolVersion close names both versions and stops retrying fast", async () => {
    fake = await FakeController.start();
    fake.answerHello = {
      close: CloseCode.protocolVersion,
      reason: `protocol ${PROTOCOL_VERSION} is not supported; this controller speaks 9.0`,
    };
    harness = startLink({
      url: fake.url,
      core: new FakeCore(),
      bootstrapToken: TOKEN,
      random: () => 0,
      timing: { initialBackoffMs: 20, maxBackoffMs: 40, slowBackoffMs: 1200 },
    });
    const line = await harness.log.waitFor(/refused protocol/);
    expect(line.level).toBe("error");
    expect(line.message).toContain(`protocol ${PROTOCOL_VERSION} of this agent`);
    expect(line.message).toContain("speaks 9.0");
    await fake.waitFor(() => fake.connections[1], "a second dial", 5000);
    // random = 0 would retry at once under normal backoff; after this refusal it waits half the slow cap.
    expect(waits(harness)[0]).toMatchObject({ pace: "slow", retryInMs: 600 });
    expect(fake.connections[1]!.at - fake.connections[0]!.closedAt!).toBeGreaterThanOrEqual(590);
  });

  it("logs that another connection replaced it and comes back slowly", async () => {
    fake = await FakeController.start();
    harness = startLink({
      url: fake.url,
      core: new FakeCore(),
      bootstrapToken: TOKEN,
      timing: { slowBackoffMs: 400 },
    });
    await fake.waitForWelcomed(1);
    fake.closeCurrent(CloseCode.replaced, "replaced by a newer connection of the same VM");
    const line = await harness.log.waitFor(/replaced this one/);
    expect(line.level).toBe("warn");
    const wait = await harness.waitForStatus((s) => s.state === "waiting", "waiting");
    expect(wait).toMatchObject({ pace: "slow" });
    expect((wait as { retryInMs: number }).retryInMs).toBeGreaterThanOrEqual(200);
  });
});
