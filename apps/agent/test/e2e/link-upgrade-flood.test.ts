/**
 * A flood of unauthenticated WebSocket upgrades to the agent endpoint, from the agent's own
 * address, by peers that never answer anything (raw sockets: no close frame, no FIN): the real
 * controller answers each one and ends it at once, and an agent restarted in the middle of the
 * flood is connected again at its first dial.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { VmView } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { FakeCore, fakeState } from "@nbfleet/testkit/fake-core";
import { HandOverProvider } from "@nbfleet/testkit/hand-over-provider";
import { type LinkHarness, startLink } from "@nbfleet/testkit/link-harness";
import { afterEach, describe, expect, it } from "vitest";

let controller: TestController | undefined;
const links: LinkHarness[] = [];
let dir: string | undefined;
const floods: net.Socket[] = [];

afterEach(async () => {
  for (const socket of floods.splice(0)) socket.destroy();
  for (const link of links.splice(0)) await link.stop();
  await controller?.close();
  controller = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface FloodStats {
  sent: number;
  /** The first line the controller answered with, per status ("none": closed without a word). */
  answers: Map<string, number>;
  /** How long each socket stayed open after its answer (or its start, when unanswered). */
  heldMs: number[];
}

/**
 * `total` upgrades, at most `parallel` waiting for an answer at a time. Each peer reads what it is
 * sent but never writes again: a close frame is never answered, the socket never half-closed.
 */
function flood(
  port: number,
  total: number,
  parallel: number,
  onAnswered: (count: number) => void,
): Promise<FloodStats> {
  const stats: FloodStats = { sent: 0, answers: new Map(), heldMs: [] };
  let answered = 0;
  let closed = 0;
  return new Promise((resolve) => {
    const next = () => {
      if (stats.sent >= total) return;
      stats.sent++;
      const n = stats.sent;
      const socket = net.connect({ host: "127.0.0.1", port });
      floods.push(socket);
      let answeredAt: number | null = null;
      const startedAt = Date.now();
      const auth =
        n % 3 === 0
          ? ""
          : `Authorization: Bearer ${n % 3 === 1 ? "nbfa_" : "nbfb_"}${randomBytes(32).toString("base64url")}\r\n`;
      socket.on("connect", () =>
        socket.write(
          "GET /v1/agent/connect HTTP/1.1\r\n" +
            `Host: 127.0.0.1:${port}\r\n` +
            "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
            `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\n` +
            `Sec-WebSocket-Version: 13\r\n${auth}\r\n`,
        ),
      );
      const answer = (status: string) => {
        if (answeredAt !== null) return;
        answeredAt = Date.now();
        stats.answers.set(status, (stats.answers.get(status) ?? 0) + 1);
        answered++;
        onAnswered(answered);
        next();
      };
      socket.once("data", (chunk) =>
        answer(/^HTTP\/1\.1 (\d{3})/.exec(chunk.toString("latin1"))?.[1] ?? "?"),
      );
      socket.on("error", () => {});
      socket.on("close", () => {
        answer("none");
        stats.heldMs.push(Date.now() - (answeredAt ?? startedAt));
        if (++closed === total) resolve(stats);
      });
    };
    for (let i = 0; i < parallel; i++) next();
  });
}

async function vmView(name: string): Promise<VmView> {
  const response = await fetch(`${controller!.url}/v1/vms/${name}`, {
    headers: { authorization: `Bearer ${controller!.adminToken}` },
  });
  return (await response.json()) as VmView;
}

describe("agent gateway under an unauthenticated upgrade flood", () => {
  it("answers and ends every bad upgrade at once, and a restarted agent is back at its first dial", async () => {
    const provider = new HandOverProvider();
    controller = await startTestController({ provider, settings: { pingIntervalSec: 1 } });
    dir = await mkdtemp(path.join(tmpdir(), "nbf-flood-"));
    const credentialFile = path.join(dir, "controller-credential");
    const created = await fetch(`${controller.url}/v1/vms`, {
      method: "POST",
      headers: { authorization: `Bearer ${controller.adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "steady", password: "a-long-password" }),
    });
    expect(created.status).toBe(201);
    const context = provider.contexts.get("steady")!;
    const core = new FakeCore();
    core.current = fakeState({ state: "running", pid: 4242 });
    const first = startLink({
      url: context.controllerUrl,
      core,
      credentialFile,
      bootstrapToken: context.bootstrapToken,
    });
    links.push(first);
    await first.waitForStatus((s) => s.state === "connected", "connected before the flood");

    const port = Number(new URL(controller.url).port);
    let releaseHalf!: () => void;
    const halfway = new Promise<void>((resolve) => {
      releaseHalf = resolve;
    });
    // More than the controller's 4096 pending handshakes, as fast as the machine allows.
    const flooding = flood(port, 5000, 400, (count) => {
      if (count === 4200) releaseHalf();
    });
    await halfway;

    // The agent is killed and started again (a new link on the same credential file).
    await first.stop();
    links.splice(links.indexOf(first), 1);
    const restartedAt = Date.now();
    const again = startLink({
      url: context.controllerUrl,
      core,
      credentialFile,
      bootstrapToken: context.bootstrapToken,
    });
    links.push(again);
    await again.waitForStatus((s) => s.state === "connected", "connected again during the flood", {
      timeoutMs: 15_000,
    });
    const backAfterMs = Date.now() - restartedAt;
    // Its first dial got in: no refusal, no wait.
    const dials = again.statuses.filter((s) => s.status.state === "connecting").length;
    expect({ backAfterMs: backAfterMs < 3000, dials }).toEqual({ backAfterMs: true, dials: 1 });
    expect(again.log.text()).not.toMatch(/come back later|refused/);

    const stats = await flooding;
    expect(stats.sent).toBe(5000);
    // Nobody was upgraded; each was answered 401, or dropped unanswered once its address had
    // spent its allowance of failures.
    expect([...stats.answers.keys()].filter((status) => status !== "401" && status !== "none")).toEqual([]);
    expect(stats.answers.get("401")).toBeGreaterThan(0);
    // Ended by the controller right away, not after a 30 s close handshake.
    const held = [...stats.heldMs].sort((a, b) => a - b);
    expect(held[Math.floor(held.length * 0.99)]).toBeLessThan(2000);

    const view = await vmView("steady");
    expect(view.agent.status).toBe("connected");
    expect(view.notebook.pid).toBe(4242);
  });
});
