import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { SimAgent, type SimAgentOptions } from "@nbfleet/testkit/sim-agent";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it, vi } from "vitest";

const controllers: TestController[] = [];
const agents: SimAgent[] = [];
afterEach(async () => {
  for (const agent of agents.splice(0)) agent.close();
  for (const c of controllers.splice(0)) await c.close();
});

/** A simulated agent of `vm` dialling `controller` (closed after the test). */
function agentOf(
  controller: TestController,
  vm: { name: string; credential: string },
  options: Omit<SimAgentOptions, "url" | "token" | "hostname">,
): SimAgent {
  const agent = new SimAgent({ url: controller.url, token: vm.credential, hostname: vm.name, ...options });
  agents.push(agent);
  return agent;
}

describe.each(STORE_DIALECTS)("a command acknowledged before a controller restart on %s", (dialect) => {
  it("is sent once more when its result never arrived, and finishes instead of timing out", async () => {
    const location = await freshStoreLocation(dialect);
    const first = await startTestController({ settings: location });
    controllers.push(first);
    const [vm] = await seedVms(first.app, { count: 1 });
    // This agent acknowledges and never answers: its result is "lost" with the old controller.
    const silent = agentOf(first, vm!, { commandDelayMs: 60_000 });
    await silent.connect();
    const sent = (
      await call(first.app, "POST", `/v1/vms/${vm!.name}/notebook/restart`, { token: first.adminToken })
    ).json();
    await eventually(
      async () => (await first.app.nbfleet.store.commands.get(sent.id))?.state,
      (state) => state === "acked",
    );
    silent.terminate();
    await first.close();
    controllers.splice(0);

    const second = await startTestController({ settings: location });
    controllers.push(second);
    const fresh = agentOf(second, vm!, { record: true });
    const reconnectedAt = Date.now();
    await fresh.connect();
    const done = (
      await call(second.app, "GET", `/v1/commands/${sent.id}?wait=10`, { token: second.adminToken })
    ).json();
    expect(done.state).toBe("succeeded");
    const received = fresh.received.filter((r) => r.message.type === "command");
    expect(received.map((r) => (r.message as { id: string }).id)).toEqual([sent.id]);
    // ...after the grace in which a reconnecting agent delivers the results it kept.
    expect(received[0]!.at - reconnectedAt).toBeGreaterThanOrEqual(1900);
  }, 30_000);
});

describe.each(STORE_DIALECTS)("a result whose write fails on %s", (dialect) => {
  async function controllerWithAgent() {
    const controller = await startTestController({
      settings: { ...(await freshStoreLocation(dialect)), reportIntervalSec: 1 },
    });
    controllers.push(controller);
    const [vm] = await seedVms(controller.app, { count: 1 });
    const agent = agentOf(controller, vm!, { record: true, reconnect: { minMs: 50, maxMs: 200 } });
    await agent.connect();
    // Past the agent's first report (within a second), beside which the controller reads its
    // queue: a command committed before that read would be sent twice, and answered twice.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const restart = async () =>
      (
        await call(controller.app, "POST", `/v1/vms/${vm!.name}/notebook/restart`, {
          token: controller.adminToken,
        })
      ).json() as { id: string };
    const waitFor = async (id: string) =>
      (
        await call(controller.app, "GET", `/v1/commands/${id}?wait=15`, { token: controller.adminToken })
      ).json();
    return { controller, agent, restart, waitFor };
  }

  it("is written again when the failure may pass (a deadlock's victim), on the same connection", async () => {
    const { controller, agent, restart, waitFor } = await controllerWithAgent();
    const { commands } = controller.app.nbfleet.store;
    const finish = vi
      .spyOn(commands, "finishManyReturning")
      .mockRejectedValueOnce(Object.assign(new Error("deadlock detected"), { code: "40P01" }));
    const sent = await restart();
    expect((await waitFor(sent.id)).state).toBe("succeeded");
    expect(finish).toHaveBeenCalledTimes(2);
    expect(agent.executed.map((e) => e.command.id)).toEqual([sent.id]);
    expect(agent.connectAttempts).toBe(1);
  }, 30_000);

  it("ends the agent's connection when the write fails for good, and its reconnection delivers the result", async () => {
    const { controller, agent, restart, waitFor } = await controllerWithAgent();
    const { commands } = controller.app.nbfleet.store;
    vi.spyOn(commands, "finishManyReturning").mockRejectedValueOnce(
      Object.assign(new Error("could not write block"), { code: "XX000" }),
    );
    const sent = await restart();
    expect((await waitFor(sent.id)).state).toBe("succeeded");
    // Sent again on the new connection and answered from the agent's memory: run once.
    const [closed] = agent.closes;
    expect(closed).toMatchObject({ code: 1011, reason: expect.stringContaining("could not be stored") });
    expect(agent.connectAttempts).toBe(2);
    const resent = agent.received.filter(
      (r) => r.at > closed!.at && r.message.type === "command" && r.message.id === sent.id,
    );
    expect(resent.length).toBeGreaterThanOrEqual(1);
    expect(agent.executed.map((e) => e.command.id)).toEqual([sent.id]);
  }, 30_000);
});
