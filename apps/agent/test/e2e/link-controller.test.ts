/**
 * The agent's link against the real controller (fastify, SQLite, the real gateway): a VM
 * created through the API hands its bootstrap token to this test's provider, the link
 * exchanges it for a credential, and a notebook restart sent through the API reaches the
 * agent core and comes back as the command's result. The core is a fake: no Jupyter here.
 */
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { CommandView, VmView } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { FakeCore, fakeState } from "@nbfleet/testkit/fake-core";
import { HandOverProvider } from "@nbfleet/testkit/hand-over-provider";
import { type LinkHarness, startLink } from "@nbfleet/testkit/link-harness";
import { afterEach, describe, expect, it } from "vitest";

let controller: TestController | undefined;
const links: LinkHarness[] = [];
let dir: string | undefined;

afterEach(async () => {
  for (const link of links.splice(0)) await link.stop();
  await controller?.close();
  controller = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function api<T>(method: string, url: string, body?: unknown): Promise<{ status: number; body: T }> {
  const response = await fetch(controller!.url + url, {
    method,
    headers: {
      authorization: `Bearer ${controller!.adminToken}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: response.status, body: (await response.json()) as T };
}

async function untilConnected(name: string): Promise<VmView> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const { body } = await api<VmView>("GET", `/v1/vms/${name}`);
    if (body.agent.status === "connected" && body.notebook.state !== null) return body;
    if (Date.now() > deadline)
      throw new Error(`VM ${name} never showed its agent connected: ${JSON.stringify(body)}`);
    await sleep(50);
  }
}

describe("agent link ↔ real controller", () => {
  it("bootstraps, stores its credential, and runs a notebook restart sent through the API", async () => {
    const provider = new HandOverProvider();
    controller = await startTestController({ provider, settings: { pingIntervalSec: 1 } });
    dir = await mkdtemp(path.join(tmpdir(), "nbf-link-e2e-"));
    const credentialFile = path.join(dir, "state", "controller-credential");

    const created = await api<{ vm: VmView }>("POST", "/v1/vms", {
      name: "linked",
      password: "a-long-password",
    });
    expect(created.status).toBe(201);
    const context = provider.contexts.get("linked")!;
    expect(context.bootstrapToken).toMatch(/^nbfb_/);

    const core = new FakeCore();
    core.current = fakeState({ state: "running", pid: 1111 });
    core.handler = async (command, progress) => {
      if (command.name !== "notebook.restart") return { ok: true };
      progress("restarting the notebook server");
      core.setState(fakeState({ state: "running", pid: 2222, restarts: 1 }));
      return { ok: true, data: { pid: 2222 } };
    };
    const first = startLink({
      url: context.controllerUrl,
      core,
      credentialFile,
      bootstrapToken: context.bootstrapToken,
      timing: { pingIntervalMs: 1000 },
    });
    links.push(first);
    await first.log.waitFor(/stored the agent credential/);
    const credential = (await readFile(credentialFile, "utf8")).trim();
    expect(credential).toMatch(/^nbfa_/);
    expect((await stat(credentialFile)).mode & 0o777).toBe(0o600);
    expect((await untilConnected("linked")).notebook.pid).toBe(1111);

    const sent = await api<CommandView>("POST", "/v1/vms/linked/notebook/restart", {});
    expect(sent.status).toBe(202);
    const done = await api<CommandView>("GET", `/v1/commands/${sent.body.id}?wait=10`);
    expect(done.body).toMatchObject({ state: "succeeded", result: { pid: 2222 } });
    expect(core.executed.map((c) => c.id)).toContain(sent.body.id);
    expect(core.executed.find((c) => c.id === sent.body.id)?.name).toBe("notebook.restart");

    // A new agent process on the same data dir: the credential alone gets it back in.
    await first.stop();
    links.splice(0);
    const again = startLink({
      url: context.controllerUrl,
      core,
      credentialFile,
      timing: { pingIntervalMs: 1000 },
    });
    links.push(again);
    await again.waitForStatus((s) => s.state === "connected", "connected with the stored credential");
    expect(again.link.vmName).toBe("linked");
    expect((await untilConnected("linked")).notebook.pid).toBe(2222);
    expect(first.log.text() + again.log.text()).not.toContain(credential);
    expect(first.log.text()).not.toContain(context.bootstrapToken);
  });
});
