import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { call } from "@nbfleet/testkit/http";
import { freshDatabaseUrl } from "@nbfleet/testkit/postgres-database";
import { signedCatalog } from "@nbfleet/testkit/signed-catalog";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
import { type UpgradeBehaviour, UpgradingAgent } from "@nbfleet/testkit/upgrading-agent";
import { eventually } from "@nbfleet/testkit/wait";
/**
 * agent.upgrade with two replicas on one PostgreSQL: the replica running operations (the lease
 * holder) waits for agents that come back on the other replica, and learns of a rollback
 * reported there, from the store.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const catalog = signedCatalog(["1.0.0", "2.0.0"]);
let replicas: TestController[] = [];
const agents: UpgradingAgent[] = [];

beforeAll(async () => {
  const databaseUrl = await freshDatabaseUrl();
  // One data dir, as replicas on one host share it (and with it the cluster's release key).
  const dataDir = makeDataDir("nbf-upgrade-replicas-");
  const first = await startTestController({ settings: { databaseUrl, dataDir, reportIntervalSec: 1 } });
  replicas = [
    first,
    await startTestController({
      settings: { databaseUrl, dataDir, adminToken: first.adminToken, reportIntervalSec: 1 },
    }),
  ];
  for (const replica of replicas) replica.app.nbfleet.operations.useArtifacts(catalog);
}, 60_000);

afterAll(async () => {
  for (const agent of agents) agent.close();
  await Promise.all(replicas.map((replica) => replica.close()));
}, 30_000);

/** Which replica holds the operations lease (runs operations). */
async function runnerIndex(): Promise<number> {
  const holder = await eventually(
    async () =>
      (
        await replicas[0]!.app.nbfleet.store.db
          .selectFrom("leases")
          .select("holder")
          .where("name", "=", "operations")
          .executeTakeFirst()
      )?.holder,
    (h) => h !== undefined,
    15_000,
    100,
  );
  const index = replicas.findIndex((r) => r.app.nbfleet.cluster.replica.id === holder);
  expect(index).toBeGreaterThanOrEqual(0);
  return index;
}

describe("agent.upgrade across replicas", () => {
  it("agents coming back (or rolling back) on the replica not running the operation are seen", async () => {
    const runner = await runnerIndex();
    const other = 1 - runner;
    const { app, adminToken: token } = replicas[other]!;
    const vms = await seedVms(app, { count: 4, prefix: "rep" });
    // [first held by, comes back on, behaviour]
    const plan: Array<[number, number, UpgradeBehaviour]> = [
      [runner, other, "upgrade"],
      [runner, other, "upgrade"],
      [other, other, "rollback"],
      [other, runner, "upgrade"],
    ];
    for (const [i, [first, back, behaviour]] of plan.entries()) {
      const agent = new UpgradingAgent({
        url: replicas[first]!.url,
        credential: vms[i]!.credential,
        hostname: vms[i]!.name,
        version: "1.0.0",
        behaviour,
      });
      agents.push(agent);
      await agent.connect();
      agent.url = replicas[back]!.url;
    }
    await Promise.all(replicas.map((r) => r.app.nbfleet.store.writer.flush()));
    const res = await call(app, "POST", "/v1/operations", {
      token,
      body: {
        action: "agent.upgrade",
        selector: { all: true },
        params: { version: "2.0.0" },
        maxConcurrency: 4,
        maxErrors: 1,
      },
    });
    expect(res.statusCode, res.body).toBe(201);
    const id = res.json().operation.id as string;
    const op = await eventually(
      async () => (await call(app, "GET", `/v1/operations/${id}?targetsLimit=10`, { token })).json(),
      (o) => o.state !== "running" && o.state !== "pending",
      30_000,
      100,
    );
    expect(op.targets.items.map((t: { state: string }) => t.state)).toEqual([
      "succeeded",
      "succeeded",
      "failed",
      "succeeded",
    ]);
    expect(op.targets.items[2].error.code).toBe("NBF_TARGET_UPGRADE_ROLLED_BACK");
    expect(agents.map((a) => a.upgrades.length)).toEqual([1, 1, 1, 1]);
    expect(agents.map((a) => a.version)).toEqual(["2.0.0", "2.0.0", "1.0.0", "2.0.0"]);
  }, 60_000);
});
