/**
 * A file of its own: event ids never go backwards within a process (store/ids.ts), so a test
 * before it in the same module registry could already have moved them onto the machine's clock.
 */
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { SseReader } from "@nbfleet/testkit/sse-reader";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";
import { eventIdBound } from "../../store/ids.js";

let controller: TestController | undefined;
afterEach(async () => {
  await controller?.close();
  controller = undefined;
});

describe("GET /v1/events on a replica whose machine's clock is ahead of the cluster's", () => {
  it("leaves the replica's event ids on the cluster's clock (other replicas' tails would skip them)", async () => {
    // The cluster's clock 30 s behind this machine's (its Date.now): as a replica that runs ahead.
    controller = await startTestController({ localClock: () => Date.now() - 30_000 });
    const { bus, cluster } = controller.app.nbfleet;
    const reader = new SseReader(`${controller.url}/v1/events?kind=test.clock`, {
      token: controller.adminToken,
    });
    try {
      expect(await reader.ready).toBe(200);
      const event = bus.emit({ vmName: null, kind: "test.clock", message: "after a stream opened" });
      expect(event.id < eventIdBound(cluster.clock.now() + 5_000)).toBe(true);
      await eventually(
        async () => reader.events.length,
        (n) => n === 1,
        5_000,
      );
    } finally {
      reader.close();
    }
  });
});
