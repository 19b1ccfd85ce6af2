import { setTimeout as sleep } from "node:timers/promises";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
/**
 * A resumed wait (a controller restarted, or took the operations lease over) reads what the
 * store recorded since its target started: a rollback reported meanwhile fails the target; one
 * from before the target started, or about another version, does not.
 */
import { afterEach, describe, expect, it } from "vitest";
import { localClock } from "../cluster/cluster-clock.js";
import { UpgradeWatch } from "./upgrade-watch.js";

let controller: TestController | undefined;
let watch: UpgradeWatch | undefined;
afterEach(async () => {
  watch?.close();
  watch = undefined;
  await controller?.close();
  controller = undefined;
});

describe.each(STORE_DIALECTS)("UpgradeWatch's look back on %s", (dialect) => {
  it("fails a resumed wait on a rollback recorded since its target started, and only then", async () => {
    controller = await startTestController({ settings: await freshStoreLocation(dialect) });
    const { store, gateway, bus } = controller.app.nbfleet;
    await seedVms(controller.app, { count: 1, prefix: "look" });
    const before = Date.now();
    await sleep(5);
    const rollback = (to: string) =>
      bus.emit({
        vmName: "look-0",
        source: "agent",
        kind: "agent.upgrade.rolled_back",
        level: "error",
        message: `agent ${to} exited 3 times; rolled back to 1.0.0`,
        data: { from: "1.0.0", to, reason: "exited 3 times" },
      });
    rollback("3.0.0");
    rollback("2.0.0");
    await store.writer.flush();
    await sleep(5);
    const after = Date.now();
    // A new watch, as in the process that resumes the operation.
    watch = new UpgradeWatch({
      store,
      gateway,
      bus,
      log: controller.app.log,
      clustered: false,
      clock: localClock,
    });
    const resumed = await watch.waitUpgraded("look-0", "2.0.0", before, 10_000, true).promise;
    expect(resumed).toMatchObject({ ok: false, error: { code: "NBF_TARGET_UPGRADE_ROLLED_BACK" } });
    expect(resumed?.ok === false && resumed.error.message).toContain("agent 2.0.0 exited 3 times");
    const timedOut = { ok: false, error: { code: "NBF_TARGET_UPGRADE_TIMED_OUT" } };
    // Started after the rollback: another attempt's.
    expect(await watch.waitUpgraded("look-0", "2.0.0", after, 300, true).promise).toMatchObject(timedOut);
    // About another version.
    expect(await watch.waitUpgraded("look-0", "4.0.0", before, 300, true).promise).toMatchObject(timedOut);
    // A fresh wait on a single controller hears rollbacks live, not from the store.
    expect(await watch.waitUpgraded("look-0", "2.0.0", before, 300, false).promise).toMatchObject(timedOut);
  });
});
