import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, expect, it } from "vitest";
import { type TestController, startTestController } from "./controller.js";
import { call } from "./http.js";
import { SimProvider } from "./sim-provider.js";

let controller: TestController | undefined;
afterEach(async () => {
  await controller?.close();
});

// A machine restart closes the agent's connection and opens a new one. The old connection's close
// used to start a reconnect of its own beside the new one; the two then replaced each other at
// the controller about 40 times a second for the rest of the run, and every further restart
// added another such pair (an API fuzz run once waited 10 s for a restart behind them).
it("a machine restart leaves the simulated agent one connection, not two that replace each other", async () => {
  const provider = new SimProvider();
  controller = await startTestController({ provider });
  const token = controller.adminToken;
  await call(controller.app, "POST", "/v1/vms", { token, body: { name: "one-socket" } });
  const agent = await provider.connected("one-socket");
  for (let round = 0; round < 3; round++) {
    const res = await call(controller.app, "POST", "/v1/vms/one-socket/restart", { token });
    expect(res.statusCode).toBe(200);
    const attempts = agent.connectAttempts;
    const closes = agent.closes.length;
    await sleep(500);
    expect(agent.connectAttempts - attempts, `connects in the 500 ms after restart ${round + 1}`).toBe(0);
    expect(agent.closes.length - closes, `closes in the 500 ms after restart ${round + 1}`).toBe(0);
    expect(agent.connected).toBe(true);
  }
});
