/**
 * The controller with real agents: `nbfleet server` as its own process, the local provider
 * booting sandboxes through the real bootstrap script, the bundled agent, Debian's Jupyter.
 * Everything is driven through the public HTTP API, as an operator's tools would.
 */
import { existsSync, readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { readPidFile } from "@nbfleet/scripts";
import type { CommandView, TokenView, VmView } from "@nbfleet/shared";
import {
  type ControllerProcess,
  api,
  startControllerProcess,
  stopControllerProcess,
} from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { servingButForLoad as serving } from "@nbfleet/testkit/vm-serving";
import { waitFor as waitUntil } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOKEN = "nbf_e2e-admin-token-0123456789";
let controller: ControllerProcess;
let dataDir: string;
let port: number;

/** Machines boot real agents and Jupyter: allow them longer than the test kit's default. */
const waitFor = <T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 120_000) =>
  waitUntil(what, probe, timeoutMs);

const vm = async (name: string) => (await api(controller)<VmView>("GET", `/v1/vms/${name}`)).body;

const waitServing = (name: string) =>
  waitFor(`${name} serving`, async () => ((v) => serving(v) && v)(await vm(name)));

function sandbox(name: string) {
  const dir = path.join(dataDir, "sandboxes", name);
  return { dir, launcherPidFile: path.join(dir, "install", "agent.pid") };
}

/** The launcher's pid from its pid file (`PID STARTTIME`). */
async function launcherPid(name: string): Promise<number> {
  const record = await readPidFile(sandbox(name).launcherPidFile);
  if (!record) throw new Error(`no launcher pid for ${name}`);
  return record.pid;
}

async function agentPid(name: string): Promise<number> {
  const launcher = await launcherPid(name);
  const children = await readFile(`/proc/${launcher}/task/${launcher}/children`, "utf8");
  return Number(children.trim().split(/\s+/)[0]);
}

/** Running, as opposed to gone or a zombie waiting for init to reap it. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

beforeAll(async () => {
  dataDir = makeDataDir();
  port = await freePort();
  controller = await startControllerProcess(dataDir, port, TOKEN);
});

afterAll(async () => {
  const call = api(controller);
  const list = await call<{ items: VmView[] }>("GET", "/v1/vms").catch(() => null);
  for (const item of list?.body.items ?? [])
    await call("DELETE", `/v1/vms/${item.name}`).catch(() => undefined);
  await stopControllerProcess(controller);
});

describe("a local fleet driven through the API", () => {
  it("creates a machine whose notebook becomes healthy, with the password shown once", async () => {
    const created = await api(controller)<{ vm: VmView; password: string }>("POST", "/v1/vms", {
      name: "nb1",
      labels: { team: "a" },
    });
    expect(created.status).toBe(201);
    expect(created.body.password).toMatch(/.{12,}/);
    const ready = await waitServing("nb1");
    expect(ready.provider).toBe("local");
    expect(ready.labels).toEqual({ team: "a" });
    expect(ready.notebook.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+\/$/);
    expect(ready.notebook.certificate?.fingerprintSha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    const stored = JSON.stringify(await readFile(path.join(dataDir, "nbfleet.db")).catch(() => ""));
    expect(stored).not.toContain(created.body.password);
  });

  it("restarts the notebook through the API: a new pid, healthy again", async () => {
    const before = await vm("nb1");
    const queued = await api(controller)<CommandView>("POST", "/v1/vms/nb1/notebook/restart");
    expect(queued.status).toBe(202);
    const done = await api(controller)<CommandView>("GET", `/v1/commands/${queued.body.id}?wait=60`);
    expect(done.body.state).toBe("succeeded");
    const after = await waitFor("a new healthy pid", async () => {
      const view = await vm("nb1");
      return serving(view) && view.notebook.pid !== before.notebook.pid && view;
    });
    expect(after.notebook.restarts).toBe(before.notebook.restarts + 1);
    expect(alive(before.notebook.pid!)).toBe(false);
  });

  it("stops and starts the machine", async () => {
    const pid = (await vm("nb1")).notebook.pid!;
    const stopped = await api(controller)<VmView>("POST", "/v1/vms/nb1/stop");
    expect(stopped.status).toBe(200);
    const down = await waitFor("nb1 stopped", async () => {
      const view = await vm("nb1");
      return view.state === "stopped" && view.agent.status === "disconnected" && view;
    });
    expect(down.health.status).toBe("unknown");
    expect(alive(pid)).toBe(false);

    expect((await api(controller)("POST", "/v1/vms/nb1/start")).status).toBe(200);
    const up = await waitServing("nb1");
    expect(up.state).toBe("running");
  });

  it("sees a killed agent as disconnected with health unknown, and the agent comes back by itself", async () => {
    const notebookPid = (await vm("nb1")).notebook.pid!;
    const killedAt = Date.now();
    process.kill(await agentPid("nb1"), "SIGKILL");
    const lost = await waitFor(
      "nb1 disconnected",
      async () => {
        const view = await vm("nb1");
        return view.agent.status === "disconnected" && view;
      },
      45_000,
    );
    expect(lost.health.status).toBe("unknown");
    expect(Date.now() - killedAt).toBeLessThan(45_000);
    const back = await waitServing("nb1");
    // The respawned agent re-adopted the notebook server instead of restarting it.
    expect(back.notebook.pid).toBe(notebookPid);
  });

  it("keeps VMs, tokens and queued commands across a kill -9 of the controller; agents reconnect", async () => {
    const viewer = await api(controller)<TokenView & { token: string }>("POST", "/v1/tokens", {
      name: "dashboard",
      role: "viewer",
    });
    expect(viewer.status).toBe(201);
    // A second machine, stopped, so a command to it stays queued.
    expect((await api(controller)("POST", "/v1/vms", { name: "nb2" })).status).toBe(201);
    await waitServing("nb2");
    await api(controller)("POST", "/v1/vms/nb2/stop");
    await waitFor("nb2 stopped", async () => (await vm("nb2")).agent.status === "disconnected");
    const queued = await api(controller)<CommandView>("POST", "/v1/vms/nb2/notebook/restart");
    expect(queued.body.state).toBe("queued");
    expect(queued.body.note).toMatch(/offline|queued/i);

    await stopControllerProcess(controller, "SIGKILL");
    controller = await startControllerProcess(dataDir, port, TOKEN);

    const names = (await api(controller)<{ items: VmView[] }>("GET", "/v1/vms")).body.items.map(
      (v) => v.name,
    );
    expect(names).toEqual(["nb1", "nb2"]);
    const tokens = (await api(controller)<{ items: TokenView[] }>("GET", "/v1/tokens")).body.items;
    expect(tokens.map((t) => t.name)).toContain("dashboard");
    expect((await api(controller, viewer.body.token)("GET", "/v1/vms")).status).toBe(200);
    const stillQueued = await api(controller)<CommandView>("GET", `/v1/commands/${queued.body.id}`);
    expect(stillQueued.body.state).toBe("queued");
    await waitServing("nb1");

    // The queued restart reaches nb2's agent once the machine is back.
    await api(controller)("POST", "/v1/vms/nb2/start");
    const delivered = await waitFor("the queued command delivered", async () => {
      const command = (await api(controller)<CommandView>("GET", `/v1/commands/${queued.body.id}`)).body;
      return command.state === "succeeded" && command;
    });
    expect(delivered.attempts).toBeGreaterThanOrEqual(1);
  });

  it("deletes a machine and leaves nothing behind", async () => {
    const view = await vm("nb2");
    const launcher = await launcherPid("nb2");
    expect((await api(controller)("DELETE", "/v1/vms/nb2")).status).toBe(204);
    expect((await api(controller)("GET", "/v1/vms/nb2")).status).toBe(404);
    expect(existsSync(sandbox("nb2").dir)).toBe(false);
    const pids = [launcher, view.notebook.pid].filter((p): p is number => typeof p === "number");
    for (const pid of pids) expect(alive(pid), `pid ${pid}`).toBe(false);
  });
});
