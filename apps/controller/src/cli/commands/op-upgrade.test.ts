import { AGENT_VERSION } from "@nbfleet/shared";
import { handMadeArtifact, publishArtifact } from "@nbfleet/testkit/agent-versions";
import { runCli } from "@nbfleet/testkit/cli";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { seedVms } from "@nbfleet/testkit/sim-fleet";
import { UpgradingAgent } from "@nbfleet/testkit/upgrading-agent";
/** `nbfleet op run agent.upgrade --version V [--canary N] [--canary-soak-sec S]` and `vm ls`'s versions. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { UPGRADE_VERSION_FLAG, commandVersionFlag } from "../command-version-flag.js";

let controller: TestController;
let agents: UpgradingAgent[];

beforeAll(async () => {
  controller = await startTestController({ settings: { reportIntervalSec: 1 } });
  // Published to the controller's own store: the VM view's `outdated` and the operation read it.
  for (const version of ["1.0.0", "1.1.0"])
    await publishArtifact(
      { url: controller.url, token: controller.adminToken },
      await handMadeArtifact(version, "process.exit(0)"),
    );
  const vms = await seedVms(controller.app, { count: 3, prefix: "cli" });
  agents = vms.map(
    (vm) =>
      new UpgradingAgent({
        url: controller.url,
        credential: vm.credential,
        hostname: vm.name,
        version: "1.0.0",
      }),
  );
  await Promise.all(agents.map((a) => a.connect()));
}, 60_000);

afterAll(async () => {
  for (const agent of agents ?? []) agent.close();
  await controller?.close();
});

const nbfleet = (...args: string[]) => runCli(controller, ...args);

describe("nbfleet op run agent.upgrade", () => {
  it("lists outdated agents, rolls a version out canary first, then lists them current", async () => {
    const before = await nbfleet("vm", "ls");
    expect(before.code).toBe(0);
    expect(before.stdout).toMatch(/AGENT/);
    expect(before.stdout).toMatch(/cli-0 .*1\.0\.0 \(outdated\)/);
    const run = await nbfleet(
      "--json",
      "op",
      "run",
      "agent.upgrade",
      "--all",
      "--version",
      "1.1.0",
      "--canary",
      "1",
      "--canary-soak-sec",
      "1",
      "--upgrade-timeout-sec",
      "30",
    );
    expect(run.code, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout);
    expect(out.operation).toMatchObject({
      action: "agent.upgrade",
      state: "succeeded",
      upgrade: { version: "1.1.0", timeoutSec: 30, canary: 1, canarySoakSec: 1 },
    });
    expect(agents.map((a) => a.upgrades.map((u) => u.to))).toEqual([["1.1.0"], ["1.1.0"], ["1.1.0"]]);
    const after = await nbfleet("vm", "ls");
    expect(after.stdout).toMatch(/cli-0 .*1\.1\.0/);
    expect(after.stdout).not.toContain("outdated");
    const filtered = JSON.parse((await nbfleet("--json", "vm", "ls", "--agent-version", "1.0.0")).stdout);
    expect(filtered).toEqual([]);
    const current = JSON.parse((await nbfleet("--json", "vm", "ls", "--agent-version", "1.1.0")).stdout);
    expect(
      current.map((vm: { name: string; agent: { outdated: boolean } }) => [vm.name, vm.agent.outdated]),
    ).toEqual([
      ["cli-0", false],
      ["cli-1", false],
      ["cli-2", false],
    ]);
  }, 120_000);

  it("refuses a missing or malformed version, and upgrade flags on other actions", async () => {
    const missing = await nbfleet("op", "run", "agent.upgrade", "--all");
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--version");
    const malformed = await nbfleet("op", "run", "agent.upgrade", "--all", "--version=latest");
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain("latest");
    const elsewhere = await nbfleet(
      "op",
      "run",
      "notebook.restart",
      "--all",
      "--version",
      "1.1.0",
      "--canary",
      "1",
    );
    expect(elsewhere.code).toBe(2);
    expect(elsewhere.stderr).toContain("--version, --canary: only for agent.upgrade");
    const unknown = await nbfleet("op", "run", "agent.upgrade", "--all", "--version", "9.9.9");
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toContain("NBF_ARTIFACT_NOT_FOUND");
  }, 120_000);

  it("leaves --version the program's everywhere else", async () => {
    const version = await nbfleet("--version");
    expect(version.stdout.trim()).toBe(AGENT_VERSION);
    expect(commandVersionFlag(["node", "nbfleet", "vm", "ls", "--version"])).toEqual([
      "node",
      "nbfleet",
      "vm",
      "ls",
      "--version",
    ]);
    expect(
      commandVersionFlag(["node", "nbfleet", "--url", "op", "op", "run", "agent.upgrade", "--version=1.2.3"]),
    ).toEqual([
      "node",
      "nbfleet",
      "--url",
      "op",
      "op",
      "run",
      "agent.upgrade",
      `${UPGRADE_VERSION_FLAG}=1.2.3`,
    ]);
    expect(commandVersionFlag(["node", "nbfleet", "op", "run", "x", "--", "--version"]).at(-1)).toBe(
      "--version",
    );
  }, 60_000);
});
