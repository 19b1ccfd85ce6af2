import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { SimAgent } from "@nbfleet/testkit/sim-agent";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";

const controllers: TestController[] = [];
const agents: SimAgent[] = [];
afterEach(async () => {
  for (const agent of agents.splice(0)) agent.close();
  for (const c of controllers.splice(0)) await c.close();
});

describe.each(STORE_DIALECTS)("a command acknowledged before a controller restart on %s", (dialect) => {
  it("is sent once more when its result never arrived, and finishes instead of timing out", async () => {
    const location = await freshStoreLocation(dialect);
    const first = await startTestController({ settings: location });
    controllers.push(first);
    const [vm] = await seedVms(first.app, { count: 1 });
    // This agent acknowledges and never answers: its result is "lost" with the old controller.
    const silent = new SimAgent({
      url: first.url,
      token: vm!.credential,
      hostname: vm!.name,
      commandDelayMs: 60_000,
    });
    agents.push(silent);
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
    const fresh = new SimAgent({ url: second.url, token: vm!.credential, hostname: vm!.name, record: true });
    agents.push(fresh);
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
