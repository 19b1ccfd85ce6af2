import { setTimeout as sleep } from "node:timers/promises";
import type { VmView, WelcomeMessage } from "@nbfleet/shared";
import { CloseCode } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { HandOverProvider } from "@nbfleet/testkit/hand-over-provider";
import { call } from "@nbfleet/testkit/http";
import { type RawAgent, openRaw, rawHello } from "@nbfleet/testkit/raw-agent";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";

let controller: TestController;
const raws: RawAgent[] = [];
afterEach(async () => {
  for (const raw of raws.splice(0)) raw.ws.terminate();
  await controller?.close();
});

function raw(token: string | null): RawAgent {
  const connection = openRaw(controller.url, token);
  raws.push(connection);
  return connection;
}

/** Connects with `token`, says hello and resolves with the welcome. */
async function welcomed(token: string): Promise<{ agent: RawAgent; welcome: WelcomeMessage }> {
  const agent = raw(token);
  await agent.opened;
  agent.ws.send(rawHello());
  const welcome = await new Promise<WelcomeMessage>((resolve, reject) => {
    agent.ws.once("message", (data) => resolve(JSON.parse(String(data)) as WelcomeMessage));
    void agent.closed.then(({ code, reason }) => reject(new Error(`closed ${code} ${reason}`)));
  });
  return { agent, welcome };
}

async function create(provider: HandOverProvider, name: string): Promise<string> {
  const res = await call(controller.app, "POST", "/v1/vms", { token: controller.adminToken, body: { name } });
  expect(res.statusCode).toBe(201);
  return provider.contexts.get(name)!.bootstrapToken;
}

const vm = async (name: string): Promise<VmView> =>
  (await call(controller.app, "GET", `/v1/vms/${name}`, { token: controller.adminToken })).json();

describe("bootstrap token exchange", () => {
  it("exchanges again after a welcome that never arrived, until the agent connects with its credential", async () => {
    const provider = new HandOverProvider();
    controller = await startTestController({ provider });
    const token = await create(provider, "boot");
    expect((await vm("boot")).agent.bootstrap).toMatchObject({ state: "unused", exchangedAt: null });

    // The exchange happens, then the connection is cut: the agent never stored (or never got) it.
    const first = await welcomed(token);
    expect(first.welcome.credential).toMatch(/^nbfa_/);
    first.agent.ws.terminate();
    expect((await vm("boot")).agent.bootstrap).toMatchObject({ state: "exchanged" });

    // Its next attempt with the same token is welcomed with a fresh credential.
    const second = await welcomed(token);
    expect(second.welcome.credential).toMatch(/^nbfa_/);
    expect(second.welcome.credential).not.toBe(first.welcome.credential);
    second.agent.ws.terminate();
    // Only the latest credential works.
    expect(await raw(first.welcome.credential!).upgraded).toMatchObject({ ok: false, status: 401 });

    // The agent connects with its credential: that proves it holds it, and spends the token.
    const third = await welcomed(second.welcome.credential!);
    expect(third.welcome.credential).toBeUndefined();
    await eventually(
      () => vm("boot"),
      (v) => v.agent.status === "connected" && v.agent.bootstrap === null,
    );
    const spent = await raw(token).upgraded;
    expect(spent).toMatchObject({ ok: false, status: 401, body: { error: { code: "NBF_AUTH_INVALID" } } });
    expect(third.agent.ws.readyState).toBe(third.agent.ws.OPEN);
  });

  it("refuses an expired token with 4001 naming the expiry, says so in the VM view, and issues a new one", async () => {
    const provider = new HandOverProvider();
    controller = await startTestController({ provider, settings: { bootstrapTokenTtlSec: 1 } });
    const { app, adminToken } = controller;
    const token = await create(provider, "late");
    await sleep(1100);

    const expired = raw(token);
    expect(await expired.upgraded).toEqual({ ok: true });
    const refusal = await expired.closed;
    expect(refusal.code).toBe(CloseCode.unauthorized);
    expect(refusal.reason).toMatch(/^bootstrap token expired at \d{4}-.*nbfleet vm bootstrap-token/);
    expect(expired.messages).toEqual([]);

    const view = await vm("late");
    expect(view.agent.status).toBe("never_connected");
    expect(view.agent.bootstrap).toMatchObject({ state: "expired", exchangedAt: null });
    expect(view.agent.bootstrap!.note).toContain(`expired at ${view.agent.bootstrap!.expiresAt}`);
    expect(view.agent.bootstrap!.note).toContain("nbfleet vm bootstrap-token late");
    expect(view.agent.bootstrap!.note).toContain("POST /v1/vms/late/bootstrap-token");
    const listed = (await call(app, "GET", "/v1/vms", { token: adminToken })).json();
    expect(listed.items[0].agent.bootstrap.state).toBe("expired");

    // Issuing takes an admin; an operator is refused, an unknown VM is 404.
    const operator = (
      await call(app, "POST", "/v1/tokens", { token: adminToken, body: { name: "op", role: "operator" } })
    ).json().token as string;
    const forbidden = await call(app, "POST", "/v1/vms/late/bootstrap-token", { token: operator });
    expect(forbidden.json().error.code).toBe("NBF_FORBIDDEN");
    const missing = await call(app, "POST", "/v1/vms/ghost/bootstrap-token", { token: adminToken });
    expect(missing.json().error.code).toBe("NBF_VM_NOT_FOUND");

    const issued = await call(app, "POST", "/v1/vms/late/bootstrap-token", { token: adminToken });
    expect(issued.statusCode).toBe(201);
    const fresh = issued.json();
    expect(fresh.token).toMatch(/^nbfb_/);
    expect(Date.parse(fresh.expiresAt)).toBeGreaterThan(Date.now());
    expect((await vm("late")).agent.bootstrap).toMatchObject({ state: "unused", expiresAt: fresh.expiresAt });
    // The old token no longer exists at all; the new one gets the agent in.
    expect(await raw(token).upgraded).toMatchObject({ ok: false, status: 401 });
    const { welcome } = await welcomed(fresh.token);
    expect(welcome).toMatchObject({ vmName: "late", credential: expect.stringMatching(/^nbfa_/) });
  });

  it("lets an exchanged token expire without harm to the agent that holds its credential", async () => {
    const provider = new HandOverProvider();
    controller = await startTestController({ provider, settings: { bootstrapTokenTtlSec: 1 } });
    const token = await create(provider, "slow");
    const first = await welcomed(token);
    await sleep(1100);
    const view = (await vm("slow")).agent;
    expect(view.status).toBe("connected");
    expect(view.bootstrap).toMatchObject({ state: "expired", exchangedAt: expect.any(String) });
    expect(view.bootstrap!.note).toContain("still on the session the token opened");
    expect(view.bootstrap!.note).toContain("nbfleet vm bootstrap-token slow");
    // The token can no longer be traded again...
    const late = raw(token);
    expect((await late.closed).code).toBe(CloseCode.unauthorized);
    // ...but the credential it bought works, and consumes it.
    first.agent.ws.terminate();
    const back = await welcomed(first.welcome.credential!);
    expect(back.welcome.credential).toBeUndefined();
    await eventually(
      () => vm("slow"),
      (v) => v.agent.status === "connected" && v.agent.bootstrap === null,
    );
  });

  it("answers an unknown secret 401 without upgrading, and drops a failing address's surplus while its agent gets in", async () => {
    const provider = new HandOverProvider();
    controller = await startTestController({ provider });
    const token = await create(provider, "near");
    const answers: Array<number | "dropped"> = [];
    for (let i = 0; i < 40; i++) {
      const attempt = raw(i % 2 ? `nbfa_forged-${i}` : null);
      const result = await Promise.race([attempt.upgraded, attempt.closed.then(() => "closed" as const)]);
      answers.push(result === "closed" ? "dropped" : result.ok ? 101 : result.status);
    }
    // 20 failures answered (the burst), the rest from this address dropped without an answer.
    expect(answers.slice(0, 20)).toEqual(Array(20).fill(401));
    expect(answers.slice(20)).toEqual(Array(20).fill("dropped"));
    // A valid secret from the same address is never refused.
    const { welcome } = await welcomed(token);
    expect(welcome.vmName).toBe("near");
  });
});
