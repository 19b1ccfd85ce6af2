/**
 * A bootstrap exchange cut short, against the real controller: the welcome carrying the new
 * credential is lost on the way (a TCP relay drops the connection when it sees it), or the
 * agent gets it but dies before storing it. Either way its next attempt with the same
 * bootstrap token gets it in, and once it has connected with its credential the token is spent.
 * And a credential refused at the upgrade (HTTP 401): the agent says why, and uses its token.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import type { VmView } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { FakeCore, fakeState } from "@nbfleet/testkit/fake-core";
import { HandOverProvider } from "@nbfleet/testkit/hand-over-provider";
import { type LinkHarness, startLink } from "@nbfleet/testkit/link-harness";
import { afterEach, describe, expect, it } from "vitest";

let controller: TestController | undefined;
let relay: net.Server | undefined;
const links: LinkHarness[] = [];
let dir: string | undefined;

afterEach(async () => {
  for (const link of links.splice(0)) await link.stop();
  relay?.close();
  relay = undefined;
  await controller?.close();
  controller = undefined;
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function api<T>(method: string, url: string): Promise<T> {
  const response = await fetch(controller!.url + url, {
    method,
    headers: { authorization: `Bearer ${controller!.adminToken}` },
  });
  return (await response.json()) as T;
}

async function setUp(name: string): Promise<{ url: string; token: string; core: FakeCore }> {
  const provider = new HandOverProvider();
  controller = await startTestController({ provider, settings: { pingIntervalSec: 1 } });
  dir = await mkdtemp(path.join(tmpdir(), "nbf-boot-recovery-"));
  const response = await fetch(`${controller.url}/v1/vms`, {
    method: "POST",
    headers: { authorization: `Bearer ${controller.adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ name, password: "a-long-password" }),
  });
  expect(response.status).toBe(201);
  const context = provider.contexts.get(name)!;
  const core = new FakeCore();
  core.current = fakeState({ state: "running", pid: 777 });
  return { url: context.controllerUrl, token: context.bootstrapToken, core };
}

/**
 * A TCP relay to `target` that, on its first connection, drops both sides instead of passing on
 * the controller's welcome. Resolves with its URL and the number of connections it relayed.
 */
async function welcomeDroppingRelay(
  target: string,
): Promise<{ url: string; relayed: () => number; dropped: () => number }> {
  const { hostname, port } = new URL(target);
  let relayed = 0;
  let dropped = 0;
  relay = net.createServer((client) => {
    relayed++;
    const cutThisOne = relayed === 1;
    const upstream = net.connect({ host: hostname, port: Number(port) });
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    client.pipe(upstream);
    upstream.on("data", (chunk: Buffer) => {
      if (cutThisOne && chunk.includes('"type":"welcome"')) {
        dropped++;
        upstream.destroy();
        client.destroy();
        return;
      }
      client.write(chunk);
    });
  });
  await new Promise<void>((resolve) => relay!.listen(0, "127.0.0.1", resolve));
  const address = relay.address() as net.AddressInfo;
  return { url: `http://127.0.0.1:${address.port}`, relayed: () => relayed, dropped: () => dropped };
}

describe("agent link: a bootstrap exchange cut short", () => {
  it("gets in at the next attempt when the welcome with its credential never arrived", async () => {
    const { url, token, core } = await setUp("lost-welcome");
    const through = await welcomeDroppingRelay(url);
    const credentialFile = path.join(dir!, "state", "controller-credential");
    const link = startLink({ url: through.url, core, credentialFile, bootstrapToken: token });
    links.push(link);
    await link.waitForStatus((s) => s.state === "connected", "connected after the lost welcome");
    expect(through.dropped()).toBe(1);
    expect(through.relayed()).toBe(2);
    expect(link.log.text()).not.toMatch(/refused the bootstrap token/);
    const credential = (await readFile(credentialFile, "utf8")).trim();
    expect(credential).toMatch(/^nbfa_/);
    // Exchanged, not yet proven: the view says so.
    expect((await api<VmView>("GET", "/v1/vms/lost-welcome")).agent.bootstrap?.state).toBe("exchanged");

    // Restarted with its stored credential only, the agent proves it holds it: the token is spent.
    await link.stop();
    links.splice(0);
    const again = startLink({ url, core, credentialFile });
    links.push(again);
    await again.waitForStatus((s) => s.state === "connected", "connected with the stored credential");
    const view = await api<VmView>("GET", "/v1/vms/lost-welcome");
    expect(view.agent.bootstrap).toBeNull();
    expect(view.agent.status).toBe("connected");
  });

  it("gets in again after it got the credential but died before storing it", async () => {
    const { url, token, core } = await setUp("unstored");
    const credentialFile = path.join(dir!, "state", "controller-credential");
    const first = startLink({ url, core, credentialFile, bootstrapToken: token });
    links.push(first);
    await first.waitForStatus((s) => s.state === "connected", "connected after the exchange");
    const lost = (await readFile(credentialFile, "utf8")).trim();
    // Killed before the credential reached its disk: the agent starts again with only the token.
    await first.stop();
    links.splice(0);
    await rm(credentialFile);

    const again = startLink({ url, core, credentialFile, bootstrapToken: token });
    links.push(again);
    await again.waitForStatus(
      (s) => s.state === "connected",
      "connected again with the same bootstrap token",
    );
    await again.log.waitFor(/stored the agent credential/);
    expect(again.log.text()).not.toMatch(/refused/);
    expect(again.statuses.filter((s) => s.status.state === "connecting")).toHaveLength(1);
    const credential = (await readFile(credentialFile, "utf8")).trim();
    expect(credential).toMatch(/^nbfa_/);
    expect(credential).not.toBe(lost);
  });

  it("reads why a credential was refused at the upgrade, and falls back to its bootstrap token", async () => {
    const { url, token, core } = await setUp("revoked");
    const credentialFile = path.join(dir!, "state", "controller-credential");
    await mkdir(path.dirname(credentialFile), { recursive: true });
    await writeFile(credentialFile, "nbfa_revoked-long-ago-0123456789012345678901\n", { mode: 0o600 });
    // Without a token to fall back on: the controller's reason, and patient retries.
    const alone = startLink({ url, core, credentialFile });
    links.push(alone);
    const line = await alone.log.waitFor(/refused this agent's credential/);
    expect(line.level).toBe("error");
    expect(line.message).toContain("NBF_AUTH_INVALID");
    expect(line.message).toContain("unknown or revoked agent credential");
    const waiting = await alone.waitForStatus((s) => s.state === "waiting", "waiting after the refusal");
    expect(waiting).toMatchObject({ pace: "patient" });
    await alone.stop();
    links.splice(0);

    // With its bootstrap token at hand it uses that after the refusal, and stores a new credential.
    const link = startLink({ url, core, credentialFile, bootstrapToken: token });
    links.push(link);
    await link.waitForStatus((s) => s.state === "connected", "connected with the bootstrap token");
    await link.log.waitFor(/stored the agent credential/);
    expect((await readFile(credentialFile, "utf8")).trim()).not.toContain("revoked");
  });
});
