import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { CloseCode, PROTOCOL_VERSION, type WelcomeMessage } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { openRaw as openRawAgent, rawHello } from "@nbfleet/testkit/raw-agent";
import { SimAgent } from "@nbfleet/testkit/sim-agent";
import { SimFleet, seedVms } from "@nbfleet/testkit/sim-fleet";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";
import type WebSocket from "ws";

let controller: TestController;
let fleet: SimFleet | undefined;
afterEach(async () => {
  fleet?.close();
  fleet = undefined;
  await controller?.close();
});

const openRaw = (token: string | null, options: WebSocket.ClientOptions = {}) =>
  openRawAgent(controller.url, token, options);
const hello = rawHello;

async function vmWithAgent(provider: SimProvider, name: string): Promise<SimAgent> {
  const res = await call(controller.app, "POST", "/v1/vms", { token: controller.adminToken, body: { name } });
  expect(res.statusCode).toBe(201);
  return provider.connected(name);
}

const vm = async (name: string) =>
  (await call(controller.app, "GET", `/v1/vms/${name}`, { token: controller.adminToken })).json();

/** A controller pinging every `pingIntervalSec`, and the credential of a VM whose agent is gone. */
async function credentialOfGoneAgent(name: string, pingIntervalSec: number): Promise<string> {
  const provider = new SimProvider();
  controller = await startTestController({ provider, settings: { pingIntervalSec } });
  const agent = await vmWithAgent(provider, name);
  agent.terminate();
  await eventually(
    () => vm(name),
    (v) => v.agent.status === "disconnected",
  );
  return agent.credential!;
}

describe("agent gateway", () => {
  it("exchanges a bootstrap token for a credential once and welcomes the credential after", async () => {
    const provider = new SimProvider({ reconnect: undefined });
    controller = await startTestController({ provider });
    const agent = await vmWithAgent(provider, "boot");
    const firstWelcome = agent.received[0]!.message as WelcomeMessage;
    expect(firstWelcome).toMatchObject({ type: "welcome", vmName: "boot", reportIntervalSec: 15 });
    expect(firstWelcome.credential).toMatch(/^nbfa_/);
    agent.close();
    await eventually(
      () => vm("boot"),
      (v) => v.agent.status === "disconnected" && v.health.status === "unknown",
    );
    const again = await agent.connect();
    expect(again.vmName).toBe("boot");
    expect(again.credential).toBeUndefined();
    await eventually(
      () => vm("boot"),
      (v) => v.agent.status === "connected" && v.health.status === "healthy",
    );
    // The agent has connected with its credential: the bootstrap token is spent, and refused at
    // the upgrade, never becoming a WebSocket.
    const reuse = await openRaw(agent.options.token).upgraded;
    expect(reuse).toMatchObject({ ok: false, status: 401, body: { error: { code: "NBF_AUTH_INVALID" } } });
  });

  it("marks an agent that stops answering pings disconnected with unknown health", async () => {
    const credential = await credentialOfGoneAgent("quiet", 0.1);
    // A peer that keeps its socket open but never answers pings is cut off after two misses.
    const mute = openRaw(credential, { autoPong: false });
    await mute.opened;
    mute.ws.send(hello());
    await eventually(
      () => vm("quiet"),
      (v) => v.agent.status === "connected" && v.health.status === "healthy",
    );
    const started = Date.now();
    const { code } = await mute.closed;
    expect(code).toBe(1006);
    expect(Date.now() - started).toBeLessThan(2000);
    const after = await eventually(
      () => vm("quiet"),
      (v) => v.agent.status === "disconnected",
    );
    expect(after.health.status).toBe("unknown");
    expect(after.health.reasons[0]).toContain("disconnected");
    expect(after.agent.lastSeenAt).not.toBeNull();
  });

  it("serves a report at once, stores a health change at once and other changes at the next ping round", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider, settings: { pingIntervalSec: 3 } });
    const agent = await vmWithAgent(provider, "busy");
    const { store } = controller.app.nbfleet;
    const stored = async () => {
      await store.writer.flush();
      return (await store.vms.require("busy")).status;
    };
    const before = await eventually(stored, (s) => s.notebook?.pid !== undefined);
    const restart = (
      await call(controller.app, "POST", "/v1/vms/busy/notebook/restart", { token: controller.adminToken })
    ).json();
    const done = (
      await call(controller.app, "GET", `/v1/commands/${restart.id}?wait=5`, { token: controller.adminToken })
    ).json();
    expect(done.state).toBe("succeeded");
    // The agent's report after the restart: a new pid, still healthy.
    const live = await eventually(
      () => vm("busy"),
      (v) => v.notebook.pid !== before.notebook!.pid,
    );
    expect(live.health.status).toBe("healthy");
    expect((await stored()).notebook!.pid).toBe(before.notebook!.pid);
    await eventually(stored, (s) => s.notebook!.pid === live.notebook.pid, 10_000);

    agent.setNotebook("stopped");
    const down = await eventually(
      () => vm("busy"),
      (v) => v.health.status !== "healthy",
    );
    expect((await stored()).health).toBe(down.health.status);
  });

  it("stores a new certificate's expiry at once, so the expiry filter follows a rotation", async () => {
    // Pings every 30 s: a change left for the ping round would not reach the store in time.
    const credential = await credentialOfGoneAgent("rotated", 30);
    const raw = openRaw(credential);
    await raw.opened;
    raw.ws.send(hello());
    const expiring = async () =>
      (
        await call(controller.app, "GET", "/v1/vms?certExpiresWithinDays=400", {
          token: controller.adminToken,
        })
      )
        .json()
        .items.map((v: { name: string }) => v.name);
    await eventually(expiring, (names) => names.includes("rotated"));
    // The same health, a certificate for five years instead of one.
    const state = JSON.parse(hello()).state;
    state.notebook.certificate.notAfter = new Date(Date.now() + 1826 * 86_400_000).toISOString();
    state.notebook.certificate.fingerprintSha256 = "EE:FF:00:11";
    raw.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, id: "s-rotated", type: "state", state }));
    await eventually(expiring, (names) => !names.includes("rotated"), 2000);
    expect((await vm("rotated")).health.status).toBe("healthy");
    raw.ws.close();
  });

  it("pings an agent that keeps reporting every other round, and a quiet one every round", async () => {
    const credential = await credentialOfGoneAgent("chatty", 0.2);
    const raw = openRaw(credential);
    await raw.opened;
    raw.ws.send(hello());
    const pings: number[] = [];
    raw.ws.on("ping", () => pings.push(Date.now()));
    const report = JSON.parse(hello()).state;
    let sent = 0;
    const reporting = setInterval(() => {
      raw.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, id: `s-${sent++}`, type: "state", state: report }));
    }, 50);
    await sleep(2400);
    clearInterval(reporting);
    // A report in every 200 ms round: pinged every other round, never two rounds in a row.
    expect(pings.length).toBeGreaterThanOrEqual(2);
    expect(pings.length).toBeLessThanOrEqual(7);
    for (let i = 1; i < pings.length; i++) expect(pings[i]! - pings[i - 1]!).toBeGreaterThanOrEqual(350);
    // Quiet now (its pongs alone): pinged every round, and kept.
    pings.length = 0;
    await sleep(1600);
    expect(pings.length).toBeGreaterThanOrEqual(6);
    expect((await vm("chatty")).agent.status).toBe("connected");
    raw.ws.close();
  });

  it("pings every connection, spread over the interval, and stops pinging a replaced one", async () => {
    controller = await startTestController({ settings: { pingIntervalSec: 0.4 } });
    const vms = await seedVms(controller.app, { count: 40 });
    fleet = new SimFleet(controller.url, vms);
    await fleet.connectAll();
    const pings = new Map<SimAgent, number[]>();
    const count = (agent: SimAgent) => {
      const times: number[] = [];
      pings.set(agent, times);
      agent.ws!.on("ping", () => times.push(Date.now()));
    };
    fleet.agents.forEach(count);
    await sleep(1000);
    for (const times of pings.values()) expect(times.length).toBeGreaterThanOrEqual(1);
    // 40 buckets, one per 10 ms tick: the first pings of the fleet arrive over the interval, not at once.
    const firsts = [...pings.values()].map((times) => times[0]!);
    expect(Math.max(...firsts) - Math.min(...firsts)).toBeGreaterThanOrEqual(200);

    const old = fleet.agents[0]!;
    const successor = new SimAgent({ url: controller.url, token: old.credential ?? vms[0]!.credential });
    await successor.connect();
    await old.waitFor(() => old.closes.length > 0, 5000, "replacement close");
    count(successor);
    const oldPings = pings.get(old)!.length;
    await sleep(1000);
    expect(pings.get(successor)!.length).toBeGreaterThanOrEqual(1);
    expect(pings.get(old)!.length).toBe(oldPings);
    successor.close();
  });

  it("refuses another protocol major with a reason, and replaces an older connection of the same VM", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider });
    const agent = await vmWithAgent(provider, "proto");
    const future = openRaw(agent.credential);
    await future.opened;
    future.ws.send(hello({ v: "2.0" }));
    const refused = await future.closed;
    expect(refused.code).toBe(CloseCode.protocolVersion);
    expect(refused.reason).toContain("2.0");
    expect(agent.connected).toBe(true);

    const second = new SimAgent({ url: controller.url, token: agent.credential! });
    await second.connect();
    await agent.waitFor(() => agent.closes.length > 0, 5000, "replacement close");
    expect(agent.closes[0]!.code).toBe(CloseCode.replaced);
    await eventually(
      () => vm("proto"),
      (v) => v.agent.status === "connected",
    );
    second.close();
  });

  it("closes connections that send garbage with a policy code while a good agent stays healthy", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider, settings: { maxMessageBytes: 16 * 1024 } });
    const { app, adminToken: token } = controller;
    const good = await vmWithAgent(provider, "good");
    const abusers: SimAgent[] = [];
    for (let i = 0; i < 10; i++) abusers.push(await vmWithAgent(provider, `abuser-${i}`));
    for (const abuser of abusers) abuser.close();

    const validState = JSON.parse(hello()).state;
    const frames: Array<() => string | Buffer> = [
      () => randomBytes(1 + Math.floor(Math.random() * 200)),
      () => randomBytes(64).toString("latin1"),
      () => "[1,2,3]",
      () => "null",
      () => '"just a string"',
      () => "{".repeat(5000),
      () => "[".repeat(100_000),
      () => JSON.stringify({ v: "1.0", id: "x", type: "gossip" }),
      () => JSON.stringify({ v: 1, id: "x", type: "state", state: validState }),
      () => JSON.stringify({ v: "1.0", id: "x", type: "state", state: { ...validState, health: "fine" } }),
      () => JSON.stringify({ v: "1.0", id: "x", type: "ack" }),
      () => JSON.stringify({ v: "1.0", id: "x", type: "result", commandId: "c", ok: "yes" }),
      () =>
        JSON.stringify({
          v: "1.0",
          id: "x",
          type: "event",
          event: { kind: "k", level: "panic", message: "m", at: "now" },
        }),
      // A second hello after the first; before any hello, a valid report that is not a hello.
      () => hello(),
      () => "x".repeat(20 * 1024),
      () => JSON.stringify({ v: "9.0", id: "x", type: "state", state: validState }),
    ];
    const policyCodes = new Set<number>([
      CloseCode.policyViolation,
      CloseCode.messageTooBig,
      CloseCode.invalidMessage,
      CloseCode.protocolVersion,
    ]);
    const seen = new Map<number, number>();
    const rounds = 2000;
    // One connection per abuser VM at a time, so none replaces another.
    const batch = abusers.length;
    for (let start = 0; start < rounds; start += batch) {
      await Promise.all(
        Array.from({ length: batch }, async (_, j) => {
          const n = start + j;
          const abuser = abusers[n % abusers.length]!;
          const raw = openRaw(abuser.credential);
          await raw.opened;
          // Half the connections misbehave after a proper hello, half before it.
          if (n % 2 === 0) {
            raw.ws.send(hello());
            await Promise.race([new Promise((resolve) => raw.ws.once("message", resolve)), raw.closed]);
          }
          const frame = frames[n % frames.length]!();
          const skippedHello = n % 2 === 1 && typeof frame === "string" && frame.includes('"type":"hello"');
          raw.ws.send(
            skippedHello ? JSON.stringify({ v: "1.0", id: "s", type: "state", state: validState }) : frame,
          );
          const { code } = await raw.closed;
          seen.set(code, (seen.get(code) ?? 0) + 1);
          if (!policyCodes.has(code)) {
            throw new Error(`frame ${n % frames.length} closed with ${code}`);
          }
        }),
      );
    }
    expect([...seen.values()].reduce((a, b) => a + b, 0)).toBe(rounds);
    expect(seen.get(CloseCode.invalidMessage)).toBeGreaterThan(0);
    expect(seen.get(CloseCode.policyViolation)).toBeGreaterThan(0);
    expect(seen.get(CloseCode.messageTooBig)).toBeGreaterThan(0);

    // The good agent never noticed.
    expect(good.connected).toBe(true);
    expect(good.closes).toEqual([]);
    expect((await vm("good")).health.status).toBe("healthy");
    const restart = (await call(app, "POST", "/v1/vms/good/notebook/restart", { token })).json();
    const done = (await call(app, "GET", `/v1/commands/${restart.id}?wait=5`, { token })).json();
    expect(done.state).toBe("succeeded");
    const healthz = await call(app, "GET", "/healthz");
    expect(healthz.json()).toMatchObject({ status: "ok" });
  });
});
