import { handMadeArtifact, publishArtifact } from "@nbfleet/testkit/agent-versions";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { UpgradingAgent } from "@nbfleet/testkit/upgrading-agent";
import { eventually } from "@nbfleet/testkit/wait";
/**
 * Version drift in view: each VM's `agent.version` and `agent.outdated` (older than the newest
 * published artifact), `GET /v1/vms?agentVersion=`, and `/metrics` counting agents per version.
 */
import { afterEach, describe, expect, it } from "vitest";

let controller: TestController | undefined;
let agents: UpgradingAgent[] = [];
afterEach(async () => {
  for (const agent of agents) agent.close();
  agents = [];
  await controller?.close();
  controller = undefined;
});

describe.each(STORE_DIALECTS)("agent versions in the VM list on %s", (dialect) => {
  it("shows versions, marks the outdated, filters by version and counts them in /metrics", async () => {
    controller = await startTestController({
      settings: { ...(await freshStoreLocation(dialect)), metricsRefreshSec: 0.05 },
    });
    const { app, adminToken: token } = controller;
    const vms = await seedVms(app, { count: 4, prefix: "drift" });
    const versions = ["1.0.0", "1.1.0", "1.0.0"];
    agents = versions.map(
      (version, i) =>
        new UpgradingAgent({
          url: controller!.url,
          credential: vms[i]!.credential,
          hostname: vms[i]!.name,
          version,
        }),
    );
    await Promise.all(agents.map((a) => a.connect()));
    const list = async (query = "") =>
      (
        await call(app, "GET", `/v1/vms?${query.includes("limit=") ? "" : "limit=100"}${query}`, { token })
      ).json();
    const agentOf = (
      items: Array<{ name: string; agent: { version: string | null; outdated: boolean | null } }>,
    ) => items.map((vm) => [vm.name, vm.agent.version, vm.agent.outdated]);

    // Nothing published: the versions show, nothing is known to be outdated.
    expect(agentOf((await list()).items)).toEqual([
      ["drift-0", "1.0.0", null],
      ["drift-1", "1.1.0", null],
      ["drift-2", "1.0.0", null],
      ["drift-3", null, null],
    ]);
    for (const version of ["1.0.0", "1.1.0"])
      await publishArtifact(
        { url: controller.url, token },
        await handMadeArtifact(version, "process.exit(0)"),
      );
    expect(agentOf((await list()).items)).toEqual([
      ["drift-0", "1.0.0", true],
      ["drift-1", "1.1.0", false],
      ["drift-2", "1.0.0", true],
      ["drift-3", null, null],
    ]);
    const one = (await call(app, "GET", "/v1/vms/drift-0", { token })).json();
    expect(one.agent).toMatchObject({ version: "1.0.0", outdated: true });

    expect((await list("&agentVersion=1.0.0")).items.map((vm: { name: string }) => vm.name)).toEqual([
      "drift-0",
      "drift-2",
    ]);
    expect(
      (await list("&agentVersion=1.1.0&sort=name&order=desc")).items.map((vm: { name: string }) => vm.name),
    ).toEqual(["drift-1"]);
    expect((await list("&agentVersion=9.9.9")).items).toEqual([]);
    // Pages under the filter.
    const first = await list("&agentVersion=1.0.0&limit=1");
    expect(first.items.map((vm: { name: string }) => vm.name)).toEqual(["drift-0"]);
    const second = await list(`&agentVersion=1.0.0&limit=1&cursor=${first.nextCursor}`);
    expect(second.items.map((vm: { name: string }) => vm.name)).toEqual(["drift-2"]);
    const tooLong = await call(app, "GET", `/v1/vms?agentVersion=${"9".repeat(65)}`, { token });
    expect(tooLong.statusCode).toBe(400);
    expect(tooLong.json().error.message).toContain("agentVersion");

    const metrics = await eventually(
      async () => (await call(app, "GET", "/metrics", { token })).body,
      (text) => text.includes('nbfleet_agents{version="1.0.0"} 2'),
      10_000,
      100,
    );
    expect(metrics).toContain('nbfleet_agents{version="1.1.0"} 1');
  }, 60_000);
});
