import { setTimeout as sleep } from "node:timers/promises";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import type { SimAgent } from "@nbfleet/testkit/sim-agent";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import { STORE_DIALECTS, type StoreDialect, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";

let controller: TestController;
afterEach(async () => {
  await controller?.close();
});

async function setup(
  dialect: StoreDialect,
  provider: SimProvider,
  settings: Parameters<typeof startTestController>[0] extends infer O
    ? O extends { settings?: infer S }
      ? S
      : never
    : never = {},
): Promise<{ agent: SimAgent; token: string }> {
  controller = await startTestController({
    provider,
    settings: { ...(await freshStoreLocation(dialect)), ...settings },
  });
  await call(controller.app, "POST", "/v1/vms", { token: controller.adminToken, body: { name: "nb" } });
  const agent = await provider.connected("nb");
  await agent.waitFor(
    () => agent.commands().some((c) => c.name === "password.set"),
    5000,
    "initial password",
  );
  return { agent, token: controller.adminToken };
}

const command = async (id: string, wait = 0) =>
  (
    await call(controller.app, "GET", `/v1/commands/${id}?wait=${wait}`, { token: controller.adminToken })
  ).json();

describe.each(STORE_DIALECTS)("commands on %s", (dialect) => {
  it("round-trips a notebook restart through the agent with its lifecycle persisted", async () => {
    const provider = new SimProvider();
    const { agent, token } = await setup(dialect, provider);
    const pidBefore = agent.pidNow;
    const res = await call(controller.app, "POST", "/v1/vms/nb/notebook/restart", { token });
    expect(res.statusCode).toBe(202);
    const queued = res.json();
    expect(queued).toMatchObject({
      vmName: "nb",
      name: "notebook.restart",
      agentConnected: true,
      note: null,
    });
    expect(["sent", "acked", "succeeded"]).toContain(queued.state);
    const done = await command(queued.id, 5);
    expect(done.state).toBe("succeeded");
    expect(done.result).toEqual({ pid: agent.pidNow });
    for (const field of ["createdAt", "sentAt", "ackedAt", "finishedAt"])
      expect(done[field], field).not.toBeNull();
    expect(Date.parse(done.sentAt)).toBeLessThanOrEqual(Date.parse(done.ackedAt));
    expect(Date.parse(done.ackedAt)).toBeLessThanOrEqual(Date.parse(done.finishedAt));
    const vm = await eventually(
      async () => (await call(controller.app, "GET", "/v1/vms/nb", { token })).json(),
      (v) => v.notebook.restarts === 1,
    );
    expect(vm.notebook.pid).not.toBe(pidBefore);
    const history = (await call(controller.app, "GET", "/v1/vms/nb/commands", { token })).json();
    expect(history.items.map((c: { name: string }) => c.name)).toEqual(["notebook.restart", "password.set"]);
    // Delivered once, answered once; the agent saw the deadline.
    expect(agent.commands().filter((c) => c.id === queued.id)).toHaveLength(1);
    expect(agent.commands().find((c) => c.id === queued.id)?.deadline).toBe(Date.parse(done.expiresAt));
  });

  it("records a failed command with the agent's error and ignores a repeated result", async () => {
    const provider = new SimProvider({
      fail: (c) =>
        c.name === "notebook.start"
          ? { code: "NBF_NOTEBOOK_FAILED", message: "port 9999 is taken" }
          : undefined,
    });
    const { agent, token } = await setup(dialect, provider);
    const started = (await call(controller.app, "POST", "/v1/vms/nb/notebook/start", { token })).json();
    const failed = await command(started.id, 5);
    expect(failed).toMatchObject({
      state: "failed",
      error: { code: "NBF_NOTEBOOK_FAILED", message: "port 9999 is taken" },
    });
    agent.sendMessage({ type: "result", commandId: started.id, ok: true, data: { late: true } });
    agent.sendMessage({
      type: "event",
      event: { at: new Date().toISOString(), kind: "probe", level: "info", message: "p" },
    });
    await eventually(
      async () => {
        await controller.app.nbfleet.store.writer.flush();
        return controller.app.nbfleet.store.events.list({ vmName: "nb", limit: 1000 });
      },
      (events) => events.some((e) => e.kind === "probe"),
    );
    expect(await command(started.id)).toMatchObject({ state: "failed", result: null });
  });

  it("queues a command for an offline agent, says so, and delivers it when the agent returns", async () => {
    const provider = new SimProvider();
    const { agent, token } = await setup(dialect, provider);
    agent.close();
    await eventually(
      async () => (await call(controller.app, "GET", "/v1/vms/nb", { token })).json(),
      (v) => v.agent.status === "disconnected",
    );
    const res = await call(controller.app, "POST", "/v1/vms/nb/notebook/restart", { token });
    expect(res.statusCode).toBe(202);
    const queued = res.json();
    expect(queued).toMatchObject({ state: "queued", agentConnected: false });
    expect(queued.note).toContain("offline");
    expect(queued.note).toContain(queued.expiresAt);
    const refused = await call(controller.app, "POST", "/v1/vms/nb/notebook/stop", {
      token,
      body: { ifOffline: "fail" },
    });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().error.code).toBe("NBF_AGENT_OFFLINE");

    await agent.connect();
    expect((await command(queued.id, 5)).state).toBe("succeeded");
  });

  it("resends a command that was sent but never acknowledged when the agent reconnects", async () => {
    let deaf = true;
    const provider = new SimProvider({ ignore: (c) => deaf && c.name === "notebook.restart" });
    const { agent, token } = await setup(dialect, provider);
    const sent = (await call(controller.app, "POST", "/v1/vms/nb/notebook/restart", { token })).json();
    await agent.waitFor(() => agent.commands().some((c) => c.id === sent.id), 5000, "the first delivery");
    expect((await command(sent.id)).state).toBe("sent");
    agent.close();
    await eventually(
      async () => (await call(controller.app, "GET", "/v1/vms/nb", { token })).json(),
      (v) => v.agent.status === "disconnected",
    );
    deaf = false;
    await agent.connect();
    const done = await command(sent.id, 5);
    expect(done).toMatchObject({ state: "succeeded", attempts: 2 });
    expect(agent.commands().filter((c) => c.id === sent.id)).toHaveLength(2);
  });

  it("writes an acknowledgement on its own only when no result came within the hold", async () => {
    const provider = new SimProvider({ commandDelayMs: 60_000 });
    const { agent, token } = await setup(dialect, provider);
    const restart = async () =>
      (await call(controller.app, "POST", "/v1/vms/nb/notebook/restart", { token })).json();
    const unanswered = await restart();
    await sleep(500);
    agent.options.commandDelayMs = 700;
    const answered = await restart();
    // The hold of the first ack ends: it is written, the second one (held for ~0.5 s) is not.
    await eventually(
      () => command(unanswered.id),
      (c) => c.state === "acked",
      5000,
      10,
    );
    expect((await command(answered.id)).state).toBe("sent");
    const done = await command(answered.id, 5);
    expect(done.state).toBe("succeeded");
    // Its ack time came with the result, from when the agent acknowledged it.
    expect(Date.parse(done.finishedAt) - Date.parse(done.ackedAt)).toBeGreaterThanOrEqual(600);
  });

  it("expires a queued command after its TTL and times out one the agent never finishes", async () => {
    const provider = new SimProvider({ commandDelayMs: 60_000 });
    const { agent, token } = await setup(dialect, provider);
    const slow = (
      await call(controller.app, "POST", "/v1/vms/nb/notebook/restart", { token, body: { timeoutSec: 0.3 } })
    ).json();
    const timedOut = await command(slow.id, 5);
    expect(timedOut.state).toBe("timed_out");
    expect(timedOut.ackedAt).not.toBeNull();
    expect(timedOut.note).toContain("no result");

    agent.close();
    await eventually(
      async () => (await call(controller.app, "GET", "/v1/vms/nb", { token })).json(),
      (v) => v.agent.status === "disconnected",
    );
    const doomed = (
      await call(controller.app, "POST", "/v1/vms/nb/notebook/stop", { token, body: { ttlSec: 0.3 } })
    ).json();
    expect(doomed.state).toBe("queued");
    const expired = await command(doomed.id, 5);
    expect(expired.state).toBe("expired");
    expect(expired.sentAt).toBeNull();
    await agent.connect();
    const restarted = (
      await call(controller.app, "POST", "/v1/vms/nb/notebook/start", { token, body: { ttlSec: 5 } })
    ).json();
    await agent.waitFor(() => agent.commands().some((c) => c.id === restarted.id), 5000, "the next command");
    expect(agent.commands().some((c) => c.id === doomed.id)).toBe(false);
  });

  it("sets a password: generated or given, only the hash travels, the plaintext is returned once", async () => {
    const provider = new SimProvider();
    const { agent, token } = await setup(dialect, provider);
    const generated = (await call(controller.app, "POST", "/v1/vms/nb/notebook/password", { token })).json();
    expect(generated.password).toMatch(/^\S{20}$/);
    const given = (
      await call(controller.app, "POST", "/v1/vms/nb/notebook/password", {
        token,
        body: { password: "a fine passphrase" },
      })
    ).json();
    expect(given.password).toBeNull();
    expect((await command(given.command.id, 5)).state).toBe("succeeded");
    expect(agent.passwordHashes).toHaveLength(3);
    const wire = JSON.stringify(agent.received);
    expect(wire).not.toContain(generated.password);
    expect(wire).not.toContain("a fine passphrase");
    const { verify } = await import("@node-rs/argon2");
    expect(await verify(agent.passwordHashes[2]!.slice("argon2:".length), "a fine passphrase")).toBe(true);
  });
});

describe("a command's time left", () => {
  it("goes with every send, counted on the controller's clock, whatever the guest's clock says", async () => {
    // The controller's clock an hour behind the guest's (this process's): by the guest's clock
    // every deadline has long passed, and an agent judging by it refused every command.
    const hourBehind = () => Date.now() - 3_600_000;
    let deaf = true;
    const provider = new SimProvider({ ignore: (c) => deaf && c.name === "notebook.restart" });
    controller = await startTestController({
      provider,
      localClock: hourBehind,
      settings: { commandTtlSec: 600 },
    });
    const token = controller.adminToken;
    await call(controller.app, "POST", "/v1/vms", { token, body: { name: "nb" } });
    const agent = await provider.connected("nb");
    const sent = (await call(controller.app, "POST", "/v1/vms/nb/notebook/restart", { token })).json();
    await agent.waitFor(() => agent.commands().some((c) => c.id === sent.id), 5000, "the first delivery");
    const first = agent.commands().find((c) => c.id === sent.id)!;
    expect(first.deadline).toBe(Date.parse(sent.expiresAt));
    expect(first.deadline!).toBeLessThan(Date.now());
    expect(first.ttlMs).toBeGreaterThan(595_000);
    expect(first.ttlMs).toBeLessThanOrEqual(600_000);

    // Sent again on the next connection with what is left then.
    agent.close();
    await eventually(
      async () => (await call(controller.app, "GET", "/v1/vms/nb", { token })).json(),
      (v) => v.agent.status === "disconnected",
    );
    await sleep(300);
    deaf = false;
    await agent.connect();
    expect((await command(sent.id, 5)).state).toBe("succeeded");
    const [, second] = agent.commands().filter((c) => c.id === sent.id);
    expect(second!.deadline).toBe(first.deadline);
    expect(first.ttlMs! - second!.ttlMs!).toBeGreaterThanOrEqual(300);
  });
});
