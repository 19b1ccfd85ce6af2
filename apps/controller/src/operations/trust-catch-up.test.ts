/**
 * The controller certificates in effect reach agents that come along holding another set (a
 * machine created after the controller.trust began, one offline past the TTL), once each, and
 * nobody else. The set is written as a controller.trust operation writes it; the operation
 * itself is in controller-trust.test.ts, a real agent in the azure-tls end-to-end test.
 */
import { CAPABILITY_CONTROLLER_TRUST } from "@nbfleet/shared";
import { trustSetId } from "@nbfleet/shared/certificate-pin";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { SimAgent } from "@nbfleet/testkit/sim-agent";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { afterEach, describe, expect, it } from "vitest";
import { recordTrustSet } from "./trust-catch-up.js";

const hex = (pair: string) => Array.from({ length: 32 }, () => pair).join(":");
const PINS = [
  { certificateSha256: hex("A1"), keySha256: hex("B1") },
  { certificateSha256: hex("A2"), keySha256: hex("B2") },
];

let controller: TestController | undefined;
const agents: SimAgent[] = [];
afterEach(async () => {
  for (const agent of agents.splice(0)) agent.close();
  await controller?.close();
  controller = undefined;
});

describe.each(STORE_DIALECTS)("the controller certificates in effect on %s", (dialect) => {
  async function start() {
    controller = await startTestController({ settings: await freshStoreLocation(dialect) });
    return { app: controller.app, vms: await seedVms(controller.app, { count: 4 }) };
  }

  function agent(
    vm: { name: string; credential: string },
    extra: Partial<ConstructorParameters<typeof SimAgent>[0]>,
  ) {
    const sim = new SimAgent({ url: controller!.url, token: vm.credential, hostname: vm.name, ...extra });
    agents.push(sim);
    return sim;
  }

  const trustCommands = (sim: SimAgent) => sim.commands().filter((c) => c.name === "controller.trust");
  const trustIds = (sim: SimAgent) => [...new Set(trustCommands(sim).map((c) => c.id))];

  it("are sent once to an agent holding another set, never to one holding them or unable to take them", async () => {
    const { app, vms } = await start();
    await recordTrustSet(app.nbfleet.store.db, PINS, "op_test");
    const holding = agent(vms[0]!, {
      capabilities: [CAPABILITY_CONTROLLER_TRUST],
      controllerTrust: trustSetId(PINS),
    });
    const unable = agent(vms[1]!, {});
    const other = agent(vms[2]!, {
      capabilities: [CAPABILITY_CONTROLLER_TRUST],
      controllerTrust: trustSetId(PINS.slice(0, 1)),
    });
    const none = agent(vms[3]!, { capabilities: [CAPABILITY_CONTROLLER_TRUST] });
    for (const sim of [holding, unable, other, none]) await sim.connect();

    for (const sim of [other, none]) {
      await sim.waitFor(() => trustIds(sim).length === 1, 10_000, "the set in effect");
      expect(trustCommands(sim)[0]!.params).toEqual({ pins: PINS });
      expect(trustIds(sim)).toEqual([`cmd_trust_${trustSetId(PINS)}_${sim.hostname}`]);
    }
    // Sent once: not also by the delivery of queued commands that follows every hello.
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const sim of [other, none]) expect(trustCommands(sim)).toHaveLength(1);
    // Reconnected still holding another set: the command already exists, none is added.
    none.close();
    await agent(vms[3]!, { capabilities: [CAPABILITY_CONTROLLER_TRUST] }).connect();
    await new Promise((resolve) => setTimeout(resolve, 300));
    const stored = await app.nbfleet.commands.listForVm(vms[3]!.name, 50);
    expect(stored.filter((c) => c.name === "controller.trust")).toHaveLength(1);
    expect(trustCommands(holding)).toEqual([]);
    expect(trustCommands(unable)).toEqual([]);
  });

  it("are nothing to send before any controller.trust", async () => {
    const { app, vms } = await start();
    const sim = agent(vms[0]!, { capabilities: [CAPABILITY_CONTROLLER_TRUST] });
    await sim.connect();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(trustCommands(sim)).toEqual([]);
    expect(await app.nbfleet.commands.listForVm(vms[0]!.name, 50)).toEqual([]);
  });
});
