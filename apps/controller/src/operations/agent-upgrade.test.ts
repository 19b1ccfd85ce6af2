import { verifyArtifact } from "@nbfleet/shared/artifact-signature";
import { handMadeArtifact, publishArtifact } from "@nbfleet/testkit/agent-versions";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { freePort } from "@nbfleet/testkit/ports";
import { signedCatalog } from "@nbfleet/testkit/signed-catalog";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
import { STORE_DIALECTS, type StoreDialect, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { type UpgradeBehaviour, UpgradingAgent } from "@nbfleet/testkit/upgrading-agent";
import { eventually } from "@nbfleet/testkit/wait";
/**
 * agent.upgrade as an operation, against fake agents that speak the real protocol and, on the
 * command, answer, drop their connection and come back on the new version (or roll back, or
 * vanish, or refuse): skip-when-current, the canary and its soak, rollback and timeout as target
 * failures, the error budget, and a controller restart in the middle of a rollout.
 */
import { afterEach, describe, expect, it } from "vitest";

const A = "1.0.0";
const B = "1.1.0";
const catalog = signedCatalog([A, B, "1.2.0"]);

let controller: TestController | undefined;
let agents: UpgradingAgent[] = [];
afterEach(async () => {
  for (const agent of agents) agent.close();
  agents = [];
  await controller?.close();
  controller = undefined;
});

interface Target {
  seq: number;
  vmName: string;
  state: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
}

async function fleet(
  dialect: StoreDialect,
  behaviours: UpgradeBehaviour[],
  options: {
    versions?: string[];
    listen?: string;
    restartMs?: number;
    realCatalog?: boolean;
    upgradeTimeoutSec?: number;
  } = {},
) {
  const location = await freshStoreLocation(dialect);
  controller = await startTestController({
    settings: {
      ...location,
      reportIntervalSec: 1,
      ...(options.listen ? { listen: options.listen } : {}),
      ...(options.upgradeTimeoutSec ? { upgradeTimeoutSec: options.upgradeTimeoutSec } : {}),
    },
  });
  if (!options.realCatalog) controller.app.nbfleet.operations.useArtifacts(catalog);
  const vms = await seedVms(controller.app, { count: behaviours.length, prefix: "upg" });
  agents = vms.map(
    (vm, i) =>
      new UpgradingAgent({
        url: controller!.url,
        credential: vm.credential,
        hostname: vm.name,
        version: options.versions?.[i] ?? A,
        behaviour: behaviours[i],
        restartMs: options.restartMs ?? 100,
      }),
  );
  await Promise.all(agents.map((a) => a.connect()));
  return { app: controller.app, token: controller.adminToken, location };
}

async function run(body: Record<string, unknown>, timeoutMs = 30_000) {
  const { app, adminToken: token } = controller!;
  const res = await call(app, "POST", "/v1/operations", {
    token,
    body: { action: "agent.upgrade", selector: { all: true }, ...body },
  });
  expect(res.statusCode, res.body).toBe(201);
  return finished(res.json().operation.id, timeoutMs);
}

async function finished(id: string, timeoutMs = 30_000) {
  const { app, adminToken: token } = controller!;
  const op = await eventually(
    async () => (await call(app, "GET", `/v1/operations/${id}?targetsLimit=1000`, { token })).json(),
    (o) => o.state !== "running",
    timeoutMs,
    50,
  );
  return { op, targets: op.targets.items as Target[] };
}

async function vmVersions(): Promise<Record<string, string | null>> {
  const { app, adminToken: token } = controller!;
  const list = (await call(app, "GET", "/v1/vms?limit=100", { token })).json();
  return Object.fromEntries(
    list.items.map((vm: { name: string; agent: { version: string | null } }) => [vm.name, vm.agent.version]),
  );
}

describe.each(STORE_DIALECTS)("agent.upgrade on %s", (dialect) => {
  it("canary first, then the rest; agents already on the version are skipped; each upgraded once", async () => {
    await fleet(dialect, ["upgrade", "upgrade", "upgrade", "upgrade"], { versions: [A, A, B, A] });
    const { op, targets } = await run({
      params: { version: B },
      canary: 1,
      canarySoakSec: 1,
      maxConcurrency: 3,
    });
    expect(op.state).toBe("succeeded");
    expect(op.upgrade).toEqual({ version: B, timeoutSec: 120, canary: 1, canarySoakSec: 1 });
    expect(op.counts).toMatchObject({ succeeded: 3, skipped: 1, failed: 0 });
    const [canary, ...rest] = targets;
    expect(canary!.state).toBe("succeeded");
    // The canary soaked before anything else started.
    expect(Date.parse(canary!.finishedAt!) - Date.parse(canary!.startedAt!)).toBeGreaterThanOrEqual(1000);
    for (const t of rest) expect(t.startedAt! >= canary!.finishedAt!).toBe(true);
    const skipped = targets.find((t) => t.vmName === "upg-2")!;
    expect(skipped.state).toBe("skipped");
    expect(skipped.error?.code).toBe("NBF_TARGET_ALREADY_ON_VERSION");
    // Agent side: every other agent switched exactly once, to B, and got no second command.
    expect(agents.map((a) => a.upgrades.length)).toEqual([1, 1, 0, 1]);
    expect(agents[2]!.received).toHaveLength(0);
    for (const agent of agents) expect(agent.version).toBe(B);
    expect(Object.values(await vmVersions())).toEqual([B, B, B, B]);
    // A second rollout of the same version changes nothing.
    const again = await run({ params: { version: B } });
    expect(again.op.counts).toMatchObject({ skipped: 4, succeeded: 0 });
    expect(agents.map((a) => a.upgrades.length)).toEqual([1, 1, 0, 1]);
  }, 60_000);

  it("a canary that rolls back fails with its reason and stops the operation, the others untouched", async () => {
    const { app } = await fleet(dialect, ["rollback", "upgrade", "upgrade"]);
    const events: Array<{ kind: string; vmName: string | null }> = [];
    app.nbfleet.bus.subscribe((e) => events.push(e));
    const { op, targets } = await run({ params: { version: B }, canary: 1, canarySoakSec: 1, maxErrors: 5 });
    expect(op.state).toBe("failed");
    expect(op.reason).toContain("canary failed");
    expect(targets[0]!.state).toBe("failed");
    expect(targets[0]!.error?.code).toBe("NBF_TARGET_UPGRADE_ROLLED_BACK");
    expect(targets[0]!.error?.message).toContain("exited 3 times");
    for (const t of targets.slice(1)) {
      expect(t.state).toBe("skipped");
      expect(t.error?.code).toBe("NBF_TARGET_SKIPPED_CANARY_FAILED");
      expect(t.startedAt).toBeNull();
    }
    expect(agents.map((a) => a.received.length)).toEqual([1, 0, 0]);
    expect(agents[0]!.version).toBe(A);
    expect(events.some((e) => e.kind === "agent.upgrade.rolled_back" && e.vmName === "upg-0")).toBe(true);
  }, 60_000);

  it("a canary that turns unhealthy during its soak fails it", async () => {
    await fleet(dialect, ["sicken", "upgrade"]);
    const { op, targets } = await run({ params: { version: B }, canary: 1, canarySoakSec: 3 });
    expect(op.state).toBe("failed");
    expect(targets[0]!.error?.code).toBe("NBF_TARGET_CANARY_UNHEALTHY");
    expect(targets[1]!.error?.code).toBe("NBF_TARGET_SKIPPED_CANARY_FAILED");
    expect(agents[1]!.received).toHaveLength(0);
  }, 60_000);

  it("maxErrors stops new targets: a refused artifact fails its target and later ones never start", async () => {
    await fleet(dialect, ["upgrade", "refuse", "upgrade", "upgrade"]);
    const { op, targets } = await run({ params: { version: B }, maxConcurrency: 1, maxErrors: 0 });
    expect(op.state).toBe("failed");
    expect(targets.map((t) => t.state)).toEqual(["succeeded", "failed", "skipped", "skipped"]);
    expect(targets[1]!.error?.code).toBe("NBF_ARTIFACT_REFUSED");
    expect(targets[2]!.error?.code).toBe("NBF_TARGET_SKIPPED_ERROR_BUDGET");
    expect(agents.map((a) => a.received.length)).toEqual([1, 1, 0, 0]);
  }, 60_000);

  it("refuses bad requests, naming what was wrong", async () => {
    const { app, token } = await fleet(dialect, ["upgrade"]);
    const post = (body: Record<string, unknown>) => call(app, "POST", "/v1/operations", { token, body });
    const unknown = await post({
      action: "agent.upgrade",
      selector: { all: true },
      params: { version: "9.9.9" },
    });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe("NBF_ARTIFACT_NOT_FOUND");
    expect(unknown.json().error.message).toContain("9.9.9");
    const missing = await post({ action: "agent.upgrade", selector: { all: true } });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error.message).toContain("params.version");
    const notSemver = await post({
      action: "agent.upgrade",
      selector: { all: true },
      params: { version: "latest" },
    });
    expect(notSemver.statusCode).toBe(400);
    const canaryElsewhere = await post({ action: "notebook.restart", selector: { all: true }, canary: 1 });
    expect(canaryElsewhere.statusCode).toBe(400);
    expect(canaryElsewhere.json().error.message).toContain("only for agent.upgrade");
    const versionElsewhere = await post({
      action: "notebook.certificate",
      selector: { all: true },
      params: { version: B },
    });
    expect(versionElsewhere.statusCode).toBe(400);
    const tooShort = await post({
      action: "agent.upgrade",
      selector: { all: true },
      params: { version: B, timeoutSec: 1 },
    });
    expect(tooShort.statusCode).toBe(400);
    expect(agents[0]!.received).toHaveLength(0);
  });
});

describe("agent.upgrade (sqlite)", () => {
  it("upgrades 300 agents, 50 at a time after 2 canaries, each exactly once", async () => {
    await fleet(
      "sqlite",
      Array.from({ length: 300 }, () => "upgrade" as const),
      { restartMs: 50 },
    );
    const started = Date.now();
    const { op, targets } = await run(
      { params: { version: B }, canary: 2, canarySoakSec: 0.5, maxConcurrency: 50 },
      60_000,
    );
    expect(op.state).toBe("succeeded");
    expect(op.counts.succeeded).toBe(300);
    expect(agents.every((a) => a.upgrades.length === 1 && a.version === B)).toBe(true);
    // No more than maxConcurrency targets under way at any instant (from the targets' own times).
    const edges = targets.flatMap(
      (t): Array<[number, number]> => [
        [Date.parse(t.startedAt!), 1],
        [Date.parse(t.finishedAt!), -1],
      ],
    );
    edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    let running = 0;
    let peak = 0;
    for (const [, delta] of edges) {
      running += delta;
      peak = Math.max(peak, running);
    }
    expect(peak).toBeLessThanOrEqual(50);
    // ...and targets did run side by side.
    expect(peak).toBeGreaterThanOrEqual(10);
    expect(Date.now() - started).toBeLessThan(60_000);
  }, 120_000);

  it("sends the published artifact's sha256, size and release-key signature from the controller's store", async () => {
    const { app, token } = await fleet("sqlite", ["upgrade"], { realCatalog: true });
    const version = "2.0.0-op.test";
    const published = await publishArtifact(
      { url: controller!.url, token },
      await handMadeArtifact(version, "process.exit(0)"),
    );
    const { op } = await run({ params: { version } });
    expect(op.state).toBe("succeeded");
    const command = agents[0]!.received[0]!;
    expect(command.name).toBe("agent.upgrade");
    expect(command.params).toEqual({
      version,
      sha256: published.sha256,
      bytes: published.bytes,
      signature: published.signature,
      timeoutSec: 120,
    });
    const params = command.params as { sha256: string; signature: string };
    expect(
      verifyArtifact(app.nbfleet.artifacts.releasePublicKeyPem(), version, params.sha256, params.signature),
    ).toBe(true);
    expect(agents[0]!.version).toBe(version);
  });

  it("takes the controller's NBFLEET_UPGRADE_TIMEOUT_SEC when the operation names no timeoutSec", async () => {
    await fleet("sqlite", ["upgrade"], { upgradeTimeoutSec: 45 });
    const { op } = await run({ params: { version: B } });
    expect(op.state).toBe("succeeded");
    expect(op.upgrade.timeoutSec).toBe(45);
    expect((agents[0]!.received[0]!.params as { timeoutSec: number }).timeoutSec).toBe(45);
  });

  it("an agent that never comes back fails its target once the timeout and grace pass", async () => {
    await fleet("sqlite", ["vanish"]);
    const started = Date.now();
    const { op, targets } = await run({ params: { version: B, timeoutSec: 10 } }, 40_000);
    expect(op.state).toBe("failed");
    expect(targets[0]!.error?.code).toBe("NBF_TARGET_UPGRADE_TIMED_OUT");
    // timeoutSec 10 + grace 15 (upgradeGraceSec's floor).
    expect(Date.now() - started).toBeGreaterThanOrEqual(25_000);
  }, 60_000);

  it("an agent without the capability fails at once without a command", async () => {
    await fleet("sqlite", ["upgrade"]);
    agents[0]!.close();
    const old = new UpgradingAgent({
      ...agents[0]!.options,
      capabilities: ["notebook", "password", "certificate"],
    });
    agents.push(old);
    await old.connect();
    const { targets } = await run({ params: { version: B } });
    expect(targets[0]!.error?.code).toBe("NBF_TARGET_UPGRADE_UNSUPPORTED");
    expect(old.received).toHaveLength(0);
  });
});

describe.each(STORE_DIALECTS)("agent.upgrade across a controller restart on %s", (dialect) => {
  it("resumes the operation and upgrades no agent twice", async () => {
    const port = await freePort();
    const listen = `127.0.0.1:${port}`;
    const { location } = await fleet(dialect, ["upgrade", "upgrade", "upgrade"], { listen, restartMs: 1500 });
    const { app, adminToken: token } = controller!;
    const res = await call(app, "POST", "/v1/operations", {
      token,
      body: { action: "agent.upgrade", selector: { all: true }, params: { version: B }, maxConcurrency: 1 },
    });
    const id = res.json().operation.id as string;
    // Stopped while the first agent is restarting on the new version.
    await eventually(
      async () => agents[0]!.upgrades.length,
      (n) => n === 1,
      10_000,
    );
    await controller!.close();
    controller = await startTestController({
      settings: { ...location, reportIntervalSec: 1, listen },
    });
    controller.app.nbfleet.operations.useArtifacts(catalog);
    const { op, targets } = await finished(id, 60_000);
    expect(op.state).toBe("succeeded");
    expect(targets.map((t) => t.state)).toEqual(["succeeded", "succeeded", "succeeded"]);
    expect(agents.map((a) => a.upgrades.length)).toEqual([1, 1, 1]);
    for (const agent of agents) expect(agent.version).toBe(B);
    const events = await eventually(
      async () => {
        await controller!.app.nbfleet.store.writer.flush();
        return controller!.app.nbfleet.store.events.list({ limit: 10_000 });
      },
      (list) => list.some((e) => e.kind === "operation.resumed"),
    );
    expect(events.filter((e) => e.kind === "operation.resumed").map((e) => e.data?.operationId)).toEqual([
      id,
    ]);
  }, 90_000);
});
