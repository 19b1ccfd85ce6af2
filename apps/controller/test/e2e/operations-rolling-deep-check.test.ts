/**
 * A rolling notebook restart over machines whose deep kernel check is under way: `nbfleet
 * server` with the local provider, two sandboxes booted by the real bootstrap, real agents,
 * Debian's Jupyter. Each restart lands while that machine's deep check has a kernel open; the
 * agent cancels the check and drops its result, so every machine reports serving within
 * seconds and the operation succeeds (it used to fail with NBF_TARGET_UNHEALTHY: the kernel
 * check's "socket hang up" stayed in the health fold until the next deep check, 300 s later).
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { dataPaths, fetchEvents, fetchState, sendCommand } from "@nbfleet/agent";
import { requestApi } from "@nbfleet/agent";
import type { CommandView, VmView } from "@nbfleet/shared";
import {
  type ControllerProcess,
  api,
  startControllerProcess,
  stopControllerProcess,
} from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOKEN = "nbf_e2e-rolling-deep-check-0123456789";
const NAMES = ["deep-0", "deep-1"];
/** Far below the 300 s deep-check interval: a failure carried until then cannot pass. */
const HEALTH_TIMEOUT_SEC = 60;
let controller: ControllerProcess;
let dataDir: string;

interface Target {
  vmName: string;
  state: string;
  commandId: string;
  finishedAt: string;
  error?: { code: string; message: string } | null;
}

const vm = async (name: string) => (await api(controller)<VmView>("GET", `/v1/vms/${name}`)).body;
const serving = (v: VmView) =>
  v.agent.status === "connected" &&
  v.notebook.state === "running" &&
  (v.health.status === "healthy" || v.health.status === "degraded");

/** The machine's agent as the guest sees it: its control socket and its notebook's API. */
async function guest(name: string) {
  const paths = dataPaths(path.join(dataDir, "sandboxes", name, "agent"));
  const token = (await readFile(paths.agentTokenFile, "utf8")).trim();
  const { notebook } = await fetchState(paths.controlSocket);
  const server = { host: "127.0.0.1", port: notebook.port, baseUrl: "/", certFile: paths.certFile };
  const kernelsOpen = async () => {
    const res = await requestApi(server, { path: "api/kernels", token, timeoutMs: 5000 });
    return Array.isArray(res.body) ? res.body.length : 0;
  };
  return { paths, kernelsOpen };
}

beforeAll(async () => {
  dataDir = makeDataDir();
  controller = await startControllerProcess(dataDir, await freePort(), TOKEN, {
    NBFLEET_REPORT_INTERVAL_SEC: "2",
  });
  for (const name of NAMES) {
    const created = await api(controller)("POST", "/v1/vms", { name, labels: { ring: "deep" } });
    expect(created.status).toBe(201);
  }
  await Promise.all(
    NAMES.map((name) => waitFor(`${name} serving`, async () => serving(await vm(name)), 180_000)),
  );
}, 300_000);

afterAll(async () => {
  for (const name of NAMES) await api(controller)("DELETE", `/v1/vms/${name}`).catch(() => undefined);
  await stopControllerProcess(controller);
});

describe("a rolling restart while the deep kernel checks run", () => {
  it("succeeds, every machine serving again within seconds", async () => {
    const guests = await Promise.all(NAMES.map(guest));
    // Each machine's first deep check has run and its kernel is gone: the next one is ours.
    for (const [i, g] of guests.entries()) {
      await waitFor(
        `${NAMES[i]}'s first kernel check`,
        async () => (await fetchState(g.paths.controlSocket)).health.checks.some((c) => c.name === "kernel"),
        60_000,
      );
      await waitFor(`${NAMES[i]} without an open kernel`, async () => (await g.kernelsOpen()) === 0, 60_000);
    }
    const before = await Promise.all(NAMES.map(vm));

    const deepChecks = guests.map((g) => sendCommand(g.paths.controlSocket, "diagnose", {}));
    for (const [i, g] of guests.entries())
      await waitFor(`${NAMES[i]}'s deep check kernel`, async () => (await g.kernelsOpen()) > 0, 30_000);
    const firedAt = Date.now();
    const call = api(controller);
    const created = await call<{ operation: { id: string } }>("POST", "/v1/operations", {
      action: "notebook.restart",
      selector: { labels: "ring=deep" },
      maxConcurrency: NAMES.length,
      rolling: { enabled: true, healthTimeoutSec: HEALTH_TIMEOUT_SEC },
    });
    expect(created.status).toBe(201);
    const id = created.body.operation.id;
    const done = await waitFor(
      "the operation to end",
      async () => {
        const op = (
          await call<{ state: string; targets: { items: Target[] } }>("GET", `/v1/operations/${id}`)
        ).body;
        return op.state !== "running" && op;
      },
      (HEALTH_TIMEOUT_SEC + 60) * 1000,
    );
    await Promise.all(deepChecks);

    expect(done.targets.items.map((t) => [t.vmName, t.state, t.error?.message ?? null])).toEqual(
      NAMES.map((n) => [n, "succeeded", null]),
    );
    expect(done.state).toBe("succeeded");
    const gates: number[] = [];
    for (const target of done.targets.items) {
      const command = (await call<CommandView>("GET", `/v1/commands/${target.commandId}`)).body;
      gates.push(Date.parse(target.finishedAt) - Date.parse(command.finishedAt!));
    }
    console.log(`health gate after each restart's result: ${gates.join(", ")} ms`);
    for (const gate of gates) expect(gate).toBeLessThan(15_000);

    for (const [i, name] of NAMES.entries()) {
      // The restart came while that machine's deep check ran: its agent cancelled the check.
      const events = await fetchEvents(guests[i]!.paths.controlSocket, 200);
      expect(
        events.some((e) => e.kind === "health.deep_check_cancelled" && Date.parse(e.at) >= firedAt),
        JSON.stringify(events.slice(-20).map((e) => [e.kind, e.message.slice(0, 120)])),
      ).toBe(true);
      const after = await vm(name);
      expect(serving(after)).toBe(true);
      expect(after.notebook.pid).not.toBe(before[i]!.notebook.pid);
    }
  }, 400_000);
});
