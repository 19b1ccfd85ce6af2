import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import type { SimAgent } from "@nbfleet/testkit/sim-agent";
import { SimFleet, seedVms } from "@nbfleet/testkit/sim-fleet";
import { STORE_DIALECTS, type StoreDialect, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { eventually } from "@nbfleet/testkit/wait";
/**
 * 1,000 simulated agents (the real protocol over real WebSockets): the error budget stops the
 * rollout at exactly the right count, concurrency is never exceeded (measured from the agents'
 * own timestamps), and cancel stops it mid-way.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { OperationTargetsRepo } from "../store/operation-targets-repo.js";

let controller: TestController | undefined;
let fleet: SimFleet | undefined;
afterEach(async () => {
  fleet?.close();
  fleet = undefined;
  await controller?.close();
  controller = undefined;
});

interface Target {
  seq: number;
  vmName: string;
  state: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: { code: string } | null;
}

async function bulkFleet(dialect: StoreDialect, count: number, delayMs: (index: number) => number) {
  controller = await startTestController({
    settings: { ...(await freshStoreLocation(dialect)), reportIntervalSec: 5, commandSweepMs: 200 },
  });
  const vms = await seedVms(controller.app, { count });
  fleet = new SimFleet(controller.url, vms, { record: true });
  fleet.agents.forEach((agent, i) => {
    agent.options.commandDelayMs = delayMs(i);
  });
  await fleet.connectAll();
  return { app: controller.app, token: controller.adminToken, agents: fleet.agents };
}

function failWith(agent: SimAgent): void {
  agent.options.fail = () => ({ code: "NBF_TEST_BROKEN", message: `${agent.hostname} is broken on purpose` });
}

async function runToEnd(app: TestController["app"], token: string, body: unknown) {
  const res = await call(app, "POST", "/v1/operations", { token, body });
  expect(res.statusCode).toBe(201);
  const id = res.json().operation.id as string;
  const op = await eventually(
    async () => (await call(app, "GET", `/v1/operations/${id}?targetsLimit=0`, { token })).json(),
    (o) => o.state !== "running",
    120_000,
    50,
  );
  return { op, targets: await allTargets(app, token, id) };
}

async function allTargets(app: TestController["app"], token: string, id: string): Promise<Target[]> {
  const out: Target[] = [];
  let cursor: string | null = null;
  do {
    const page: { targets: { items: Target[]; nextCursor: string | null } } = (
      await call(
        app,
        "GET",
        `/v1/operations/${id}?targetsLimit=1000${cursor ? `&targetsCursor=${cursor}` : ""}`,
        {
          token,
        },
      )
    ).json();
    out.push(...page.targets.items);
    cursor = page.targets.nextCursor;
  } while (cursor);
  return out;
}

/** The instant the failure that broke the budget was recorded (targets finish in that order). */
function budgetBrokenAt(targets: Target[], maxErrors: number): string {
  const failures = targets
    .filter((t) => t.state === "failed")
    .map((t) => t.finishedAt!)
    .sort();
  return failures[maxErrors]!;
}

function executedCommands(agents: SimAgent[]) {
  return agents.map((agent) => agent.executed.length);
}

// Every test on SQLite; on PostgreSQL too the cancel one, which takes each store path of a
// rollout (targets marked running in batches, successes in chunks, pending ones closed, counts):
// 1,000 agents cost several seconds a test more on PostgreSQL.
const SQLITE_ONLY = ["sqlite"] as const;

describe("bulk operations over 1,000 simulated agents", () => {
  it.each(SQLITE_ONLY)(
    "stops at exactly maxErrors + 1 failures when failures are spread out, and starts nothing after (%s)",
    async (dialect) => {
      const { app, token, agents } = await bulkFleet(dialect, 1000, () => 15);
      const failing = new Set(agents.map((_, i) => i).filter((i) => i % 50 === 7));
      for (const i of failing) failWith(agents[i]!);
      const { op, targets } = await runToEnd(app, token, {
        action: "notebook.restart",
        selector: { all: true },
        maxConcurrency: 20,
        maxErrors: 10,
      });
      expect(op.state).toBe("failed");
      expect(op.reason).toContain("error budget exceeded");
      // The 11th failing target is #507; with 20 at a time the next failing one (#557) never starts.
      expect(op.counts.failed).toBe(11);
      const started = targets.filter((t) => t.startedAt !== null);
      expect(op.counts.succeeded + op.counts.failed).toBe(started.length);
      expect(op.counts.skipped).toBe(1000 - started.length);
      expect(op.counts.running + op.counts.pending).toBe(0);
      expect(Math.max(...started.map((t) => t.seq))).toBeLessThan(507 + 20);
      // The operation reports its commands' ends itself: no command.* event for any of them.
      const { store } = app.nbfleet;
      await store.writer.flush();
      const events = await store.events.list({ limit: 100_000 });
      expect(events.filter((e) => e.kind.startsWith("command.")).length).toBe(0);
      expect(events.filter((e) => e.kind === "operation.target_failed").length).toBe(11);
      const brokenAt = budgetBrokenAt(targets, 10);
      for (const t of started) expect(t.startedAt! <= brokenAt).toBe(true);
      for (const t of targets.filter((x) => x.state === "skipped"))
        expect(t.error?.code).toBe("NBF_TARGET_SKIPPED_ERROR_BUDGET");
      // Agent side: exactly the started targets ran a command, each exactly once.
      const ran = executedCommands(agents);
      for (const t of targets) expect(ran[t.seq]).toBe(t.startedAt === null ? 0 : 1);
    },
    120_000,
  );

  it.each(SQLITE_ONLY)(
    "counts failures of targets still running when the budget broke, and starts nothing after (%s)",
    async (dialect) => {
      const failing = new Set([100, 101, 102, 103, 104]);
      // The failing five are slow and end 50 ms apart: #102 breaks the budget while #103 and #104 still run.
      const { app, token, agents } = await bulkFleet(dialect, 1000, (i) =>
        failing.has(i) ? 300 + (i - 100) * 50 : 10,
      );
      for (const i of failing) failWith(agents[i]!);
      const { op, targets } = await runToEnd(app, token, {
        action: "notebook.restart",
        selector: { all: true },
        maxConcurrency: 10,
        maxErrors: 2,
      });
      // #102's failure broke the budget; #103 and #104 were already running and still count.
      expect(op.counts.failed).toBe(5);
      expect(targets.filter((t) => t.state === "failed").map((t) => t.seq)).toEqual([
        100, 101, 102, 103, 104,
      ]);
      const brokenAt = budgetBrokenAt(targets, 2);
      const started = targets.filter((t) => t.startedAt !== null);
      for (const t of started) expect(t.startedAt! <= brokenAt).toBe(true);
      const lateFailures = targets.filter((t) => t.state === "failed" && t.finishedAt! > brokenAt);
      expect(lateFailures.map((t) => t.seq)).toEqual([103, 104]);
      expect(op.counts.skipped).toBe(1000 - started.length);
      const ran = executedCommands(agents);
      for (const t of targets) expect(ran[t.seq]).toBe(t.startedAt === null ? 0 : 1);
    },
    120_000,
  );

  it.each(SQLITE_ONLY)(
    "never has more than maxConcurrency commands running on the agents at once (%s)",
    async (dialect) => {
      const { app, token, agents } = await bulkFleet(dialect, 1000, (i) => 5 + ((i * 7) % 30));
      const { op } = await runToEnd(app, token, {
        action: "notebook.restart",
        selector: { all: true },
        maxConcurrency: 50,
      });
      expect(op.state).toBe("succeeded");
      expect(op.counts.succeeded).toBe(1000);
      // Intervals on the agents' clock: command received → result sent.
      const edges: Array<[number, 1 | -1]> = [];
      for (const agent of agents) {
        const received = agent.received.filter((r) => r.message.type === "command");
        expect(received).toHaveLength(1);
        expect(agent.executed).toHaveLength(1);
        edges.push([received[0]!.at, 1], [agent.executed[0]!.at, -1]);
      }
      // At equal times an end comes before a start: the next command is sent only after a result.
      edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      let running = 0;
      let peak = 0;
      for (const [, delta] of edges) {
        running += delta;
        peak = Math.max(peak, running);
      }
      expect(peak).toBeLessThanOrEqual(50);
      // ...and the limit was actually used (the test would be empty if commands ran one by one).
      expect(peak).toBeGreaterThanOrEqual(40);
    },
    120_000,
  );

  it.each(STORE_DIALECTS)(
    "cancels mid-way: pending targets become cancelled, running ones finish, nothing starts after (%s)",
    async (dialect) => {
      const { app, token, agents } = await bulkFleet(dialect, 1000, () => 20);
      const res = await call(app, "POST", "/v1/operations", {
        token,
        body: { action: "notebook.restart", selector: { all: true }, maxConcurrency: 20 },
      });
      const id = res.json().operation.id as string;
      await eventually(
        async () => (await call(app, "GET", `/v1/operations/${id}?targetsLimit=0`, { token })).json(),
        (o) => o.counts.succeeded >= 200,
        60_000,
        10,
      );
      const cancel = await call(app, "POST", `/v1/operations/${id}/cancel`, { token });
      const cancelledAt = new Date().toISOString();
      expect(cancel.statusCode).toBe(200);
      expect(cancel.json().cancelRequestedAt).not.toBeNull();
      const op = await eventually(
        async () => (await call(app, "GET", `/v1/operations/${id}?targetsLimit=0`, { token })).json(),
        (o) => o.state !== "running",
        60_000,
        20,
      );
      expect(op.state).toBe("cancelled");
      expect(op.counts.running + op.counts.pending + op.counts.failed + op.counts.skipped).toBe(0);
      expect(op.counts.succeeded + op.counts.cancelled).toBe(1000);
      expect(op.counts.succeeded).toBeGreaterThanOrEqual(200);
      expect(op.counts.succeeded).toBeLessThan(500);
      const targets = await allTargets(app, token, id);
      for (const t of targets) {
        if (t.state === "cancelled") {
          expect(t.startedAt).toBeNull();
          expect(t.error?.code).toBe("NBF_TARGET_CANCELLED");
        } else expect(t.startedAt! <= cancelledAt).toBe(true);
      }
      const ran = executedCommands(agents);
      for (const t of targets) expect(ran[t.seq]).toBe(t.state === "succeeded" ? 1 : 0);
      const again = await call(app, "POST", `/v1/operations/${id}/cancel`, { token });
      expect(again.statusCode).toBe(409);
      expect(again.json().error.code).toBe("NBF_OPERATION_FINISHED");
    },
    120_000,
  );
});

describe("a bulk operation whose start fails once (a store error)", () => {
  it.each(STORE_DIALECTS)(
    "does not end succeeded with targets never run: it runs again and every target runs once (%s)",
    async (dialect) => {
      const { app, token, agents } = await bulkFleet(dialect, 6, () => 20);
      // The second batch's transaction fails, as on a dropped database connection.
      const markRunningMany = OperationTargetsRepo.prototype.markRunningMany;
      let calls = 0;
      const spy = vi.spyOn(OperationTargetsRepo.prototype, "markRunningMany").mockImplementation(function (
        this: OperationTargetsRepo,
        ...args
      ) {
        calls++;
        if (calls === 2) return Promise.reject(new Error("connection terminated unexpectedly"));
        return markRunningMany.apply(this, args);
      });
      try {
        const { op, targets } = await runToEnd(app, token, {
          action: "notebook.restart",
          selector: { all: true },
          maxConcurrency: 2,
        });
        expect(calls).toBeGreaterThan(2);
        expect(op.state).toBe("succeeded");
        expect(targets.map((t) => t.state)).toEqual(Array(6).fill("succeeded"));
        expect(executedCommands(agents)).toEqual(Array(6).fill(1));
      } finally {
        spy.mockRestore();
      }
    },
    60_000,
  );
});
