import type { HealthCheck } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { simState } from "@nbfleet/testkit/sim-agent";
import { SimFleet, seedVms } from "@nbfleet/testkit/sim-fleet";
import type { SimProvider } from "@nbfleet/testkit/sim-provider";
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";
import { ActivityTracker, OWN_ACTIVITY_WINDOW_MS } from "./activity.js";

function activityCheck(at: Date, data: { kernels: number; connections: number; lastActivity: Date | null }) {
  return {
    name: "activity",
    status: "pass",
    message: `${data.kernels} kernel(s), ${data.connections} connection(s)`,
    checkedAt: at.toISOString(),
    data: { ...data, lastActivity: data.lastActivity?.toISOString() ?? null },
  } satisfies HealthCheck;
}

function kernelCheck(at: Date): HealthCheck {
  return { name: "kernel", status: "pass", message: "kernel ok", checkedAt: at.toISOString() };
}

function report(checks: HealthCheck[], now: Date, notebook: "running" | "stopped" = "running") {
  const state = simState({ state: notebook, pid: 1, port: 1, restarts: 0, startedAt: null, now });
  state.health.checks.push(...checks);
  return state;
}

describe("ActivityTracker", () => {
  const t0 = Date.parse("2026-01-01T10:00:00Z");
  const at = (sec: number) => new Date(t0 + sec * 1000);
  /** A report the agent made at `madeSec` (its clock) and the controller got at `gotSec` (its clock). */
  const observe = (tracker: ActivityTracker, checks: HealthCheck[], madeSec: number, gotSec = madeSec) =>
    tracker.observe(report(checks, at(madeSec)), t0 + gotSec * 1000);
  const idle = (kernels: number, connections: number, lastActivitySec: number) => ({
    kernels,
    connections,
    lastActivity: at(lastActivitySec),
  });

  it("measures idleness from Jupyter's last_activity on the agent's clock", () => {
    const tracker = new ActivityTracker();
    // The agent's clock runs an hour ahead of the controller's: durations still come out right.
    observe(tracker, [activityCheck(at(600 + 3600), idle(0, 0, 3600))], 0, 600);
    expect(tracker.idleMs(t0 + 600_000)).toBe(600_000);
    expect(tracker.idleMs(t0 + 660_000)).toBe(660_000);
  });

  it("ignores the activity its own deep kernel check causes", () => {
    const tracker = new ActivityTracker();
    observe(tracker, [activityCheck(at(60), idle(0, 0, 0))], 60);
    expect(tracker.idleMs(t0 + 60_000)).toBe(60_000);
    // The deep round: the agent's kernel shows up as a kernel and a connection, and bumps last_activity.
    const deep = at(300);
    observe(tracker, [activityCheck(deep, idle(1, 1, 302)), kernelCheck(deep)], 300);
    expect(tracker.idleMs(t0 + 300_000)).toBe(300_000);
    // The next round still sees the bumped stamp, within the own-activity window: still idle since 0.
    observe(tracker, [activityCheck(at(315), idle(0, 0, 303)), kernelCheck(deep)], 315);
    expect(tracker.idleMs(t0 + 315_000)).toBe(315_000);
    // A user's activity outside the window counts.
    const later = 300 + OWN_ACTIVITY_WINDOW_MS / 1000 + 10;
    observe(tracker, [activityCheck(at(later + 5), idle(1, 0, later)), kernelCheck(deep)], later + 5);
    expect(tracker.idleMs(t0 + (later + 5) * 1000)).toBe(5000);
  });

  it("counts an open connection as activity now, except in the deep check's own round", () => {
    const tracker = new ActivityTracker();
    observe(tracker, [activityCheck(at(100), idle(1, 1, 0))], 100);
    expect(tracker.idleMs(t0 + 100_000)).toBe(0);
    const alone = new ActivityTracker();
    observe(alone, [activityCheck(at(100), idle(0, 0, 0))], 100);
    observe(alone, [activityCheck(at(200), idle(1, 1, 0)), kernelCheck(at(200))], 200);
    expect(alone.idleMs(t0 + 200_000)).toBe(200_000);
  });

  it("takes an own stamp as a conservative start when nothing else is known, and knows nothing without the check", () => {
    const tracker = new ActivityTracker();
    observe(tracker, [], 10);
    expect(tracker.idleMs(t0 + 10_000)).toBeNull();
    observe(tracker, [activityCheck(at(20), idle(0, 0, 12)), kernelCheck(at(10))], 20);
    expect(tracker.idleMs(t0 + 20_000)).toBe(8000);
  });
});

let controller: TestController | undefined;
let fleet: SimFleet | undefined;
afterEach(async () => {
  fleet?.close();
  fleet = undefined;
  await controller?.close();
  controller = undefined;
});

describe.each(STORE_DIALECTS)("idle shutdown policy on %s", (dialect) => {
  it("stops idle notebooks and deallocates idle VMs by label, says why, and leaves busy ones alone", async () => {
    controller = await startTestController({
      settings: { ...(await freshStoreLocation(dialect)), reportIntervalSec: 1 },
    });
    const { app, adminToken: token } = controller;
    const vms = await seedVms(app, {
      count: 4,
      labels: (i) => ({ team: i < 3 ? "a" : "b" }),
    });
    fleet = new SimFleet(controller.url, vms, { record: true });
    const [idle, busy, selfChecked, machine] = fleet.agents as [
      (typeof fleet.agents)[0],
      (typeof fleet.agents)[0],
      (typeof fleet.agents)[0],
      (typeof fleet.agents)[0],
    ];
    const started = Date.now();
    const longAgo = new Date(started - 60_000);
    idle.extraChecks = (now) => [activityCheck(now, { kernels: 0, connections: 0, lastActivity: longAgo })];
    busy.extraChecks = (now) => [activityCheck(now, { kernels: 1, connections: 1, lastActivity: now })];
    // Only its own deep checks keep moving last_activity: still idle.
    selfChecked.extraChecks = (now) => [
      activityCheck(now, { kernels: 0, connections: 0, lastActivity: new Date(now.getTime() - 500) }),
      kernelCheck(new Date(now.getTime() - 1000)),
    ];
    machine.extraChecks = (now) => [
      activityCheck(now, { kernels: 0, connections: 0, lastActivity: longAgo }),
    ];
    await fleet.connectAll();
    const connectedAt = Date.now();
    const sim = controller.provider as SimProvider;
    sim.agents.set(machine.hostname, machine);

    const viewer = (
      await call(app, "POST", "/v1/tokens", { token, body: { name: "ops", role: "operator" } })
    ).json();
    const policy = {
      enabled: true,
      rules: [
        { name: "team a notebooks", labels: "team=a", idleMinutes: 0.05, action: "notebook.stop" },
        { labels: "team=b", idleMinutes: 0.05, action: "vm.stop" },
      ],
    };
    const refused = await call(app, "PUT", "/v1/policies/idle", { token: viewer.token, body: policy });
    expect(refused.statusCode).toBe(403);
    const badLabels = await call(app, "PUT", "/v1/policies/idle", {
      token,
      body: { enabled: true, rules: [{ labels: "=x", idleMinutes: 1, action: "vm.stop" }] },
    });
    expect(badLabels.json().error.code).toBe("NBF_SELECTOR_INVALID");
    const events: Array<{ kind: string; vmName: string | null; message: string; at: string }> = [];
    app.nbfleet.bus.subscribe((e) => events.push(e));
    const set = await call(app, "PUT", "/v1/policies/idle", { token, body: policy });
    expect(set.statusCode).toBe(200);
    expect(set.json()).toMatchObject({ enabled: true, updatedBy: expect.any(String) });
    expect((await call(app, "GET", "/v1/policies/idle", { token })).json().rules).toHaveLength(2);
    expect(events.find((e) => e.kind === "policy.updated")?.message).toContain("enabled");

    await eventually(
      async () =>
        events
          .filter((e) => e.kind === "policy.idle")
          .map((e) => e.vmName)
          .sort(),
      (names) => names.length >= 3,
      20_000,
      50,
    );
    await idle.waitFor(
      () => idle.executed.some((e) => e.command.name === "notebook.stop"),
      10_000,
      "idle stop",
    );
    await selfChecked.waitFor(
      () => selfChecked.executed.some((e) => e.command.name === "notebook.stop"),
      10_000,
      "self-checked stop",
    );
    await eventually(
      async () => (await app.nbfleet.store.vms.require(machine.hostname)).state,
      (state) => state === "stopped",
    );
    expect(sim.calls).toContainEqual({ action: "stop", vm: machine.hostname });
    const why = events.find((e) => e.kind === "policy.idle" && e.vmName === idle.hostname)!;
    expect(why.message).toMatch(
      /stopping the notebook server on sim-0: no kernel or connection activity for [\d.]+ min/,
    );
    expect(why.message).toContain("rule team a notebooks");
    const vmWhy = events.find((e) => e.kind === "policy.idle" && e.vmName === machine.hostname)!;
    expect(vmWhy.message).toContain("deallocating the VM");
    // The busy one was never touched, and nothing acted twice on one idle period.
    expect(busy.executed).toHaveLength(0);
    expect(events.filter((e) => e.kind === "policy.idle")).toHaveLength(3);
    // Its idle clock started at its first report, so the 3 s limit had to pass first.
    const selfStop = events.find((e) => e.kind === "policy.idle" && e.vmName === selfChecked.hostname)!;
    expect(Date.parse(selfStop.at) - connectedAt).toBeGreaterThanOrEqual(2400);
  }, 60_000);
});
