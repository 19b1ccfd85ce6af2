import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type AgentState, foldHealth } from "@nbfleet/shared";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  type FollowUpOptions,
  UPGRADE_COMPLETED,
  UPGRADE_ROLLED_BACK,
  UpgradeFollowUp,
} from "./follow-up.js";
import { installLayout } from "./install-layout.js";

let install: string;
let events: Array<{ level: string; kind: string; message: string; data?: Record<string, unknown> }>;
let state: AgentState;

function agentState(notebook: AgentState["notebook"]["state"], warn = false): AgentState {
  const checks = [
    { name: "https", status: warn ? "warn" : "pass", message: "ok" },
  ] as AgentState["health"]["checks"];
  return {
    notebook: {
      state: notebook,
      pid: notebook === "running" ? 1234 : null,
      port: 9999,
      url: "https://127.0.0.1:9999/",
      restarts: 0,
      startedAt: null,
      generation: null,
      version: null,
      certificate: null,
      lastError: null,
    },
    health: foldHealth(checks, notebook),
  };
}

function followUp(version: string): UpgradeFollowUp {
  const options: FollowUpOptions = {
    layout: installLayout(install),
    version,
    state: () => state,
    record: (level, kind, message, data) => events.push({ level, kind, message, ...(data ? { data } : {}) }),
  };
  return new UpgradeFollowUp(options);
}

const exists = (name: string) => readdir(install).then((entries) => entries.includes(name));

beforeEach(async () => {
  install = await mkdtemp(path.join(tmpdir(), "nbf-follow-up-"));
  for (const v of ["1.0.0", "1.1.0", "0.9.0", "1.2.0.partial"])
    await mkdir(path.join(install, "versions", v), { recursive: true });
  await symlink("versions/1.1.0", path.join(install, "current"));
  await symlink("versions/1.0.0", path.join(install, "previous"));
  events = [];
  state = agentState("running");
});

afterEach(async () => {
  await rm(install, { recursive: true, force: true });
});

const pending = (to: string) =>
  writeFile(
    path.join(install, "upgrade.json"),
    `${JSON.stringify({ commandId: "c", from: "1.0.0", to, fromDir: "versions/1.0.0", toDir: `versions/${to}`, deadlineUnix: 1 })}\n`,
  );

describe("the new agent's follow-up", () => {
  it("confirms once connected and healthy: removes upgrade.json, prunes old versions, says so", async () => {
    await pending("1.1.0");
    state = agentState("starting");
    const follow = followUp("1.1.0");
    await follow.stateChanged();
    expect(await exists("upgrade.json")).toBe(true); // not connected yet
    await follow.linkConnected();
    expect(await exists("upgrade.json")).toBe(true); // connected, but the notebook is not up
    expect(events).toEqual([]);
    state = agentState("running", true); // a warning (a busy CPU) is not the agent's fault
    await follow.stateChanged();
    expect(await exists("upgrade.json")).toBe(false);
    expect((await readdir(path.join(install, "versions"))).sort()).toEqual(["1.0.0", "1.1.0"]);
    expect(events).toEqual([
      {
        level: "info",
        kind: UPGRADE_COMPLETED,
        message: "agent upgraded from 1.0.0 to 1.1.0",
        data: { from: "1.0.0", to: "1.1.0", pruned: ["0.9.0", "1.2.0.partial"] },
      },
    ]);
    await follow.stateChanged();
    expect(events).toHaveLength(1);
  });

  it("never confirms an upgrade to another version (the old agent, started again)", async () => {
    await pending("1.1.0");
    const follow = followUp("1.0.0");
    await follow.linkConnected();
    expect(await exists("upgrade.json")).toBe(true);
    expect(events).toEqual([]);
  });

  it("does not confirm while the notebook server is unhealthy", async () => {
    await pending("1.1.0");
    state = agentState("failed");
    const follow = followUp("1.1.0");
    await follow.linkConnected();
    expect(await exists("upgrade.json")).toBe(true);
    state = agentState("stopped"); // deliberately stopped: nothing to be healthy
    await follow.stateChanged();
    expect(await exists("upgrade.json")).toBe(false);
  });

  it("reports the launcher's rollback as an error event once connected, then removes rollback.json", async () => {
    await writeFile(
      path.join(install, "rollback.json"),
      '{"from":"1.0.0","to":"1.1.0","reason":"the new agent exited 3 times (last status 1)","at":"2026-12-04T17:00:00Z"}\n',
    );
    const follow = followUp("1.0.0");
    await follow.stateChanged();
    expect(events).toEqual([]);
    await follow.linkConnected();
    expect(events).toEqual([
      {
        level: "error",
        kind: UPGRADE_ROLLED_BACK,
        message:
          "the agent upgrade from 1.0.0 to 1.1.0 was rolled back: the new agent exited 3 times (last status 1)",
        data: { from: "1.0.0", to: "1.1.0", reason: "the new agent exited 3 times (last status 1)" },
      },
    ]);
    expect(await exists("rollback.json")).toBe(false);
  });
});
