/**
 * A rolling operation's health gate while its runner stops (the operations lease moved, or the
 * controller closes). The gate waits up to healthTimeoutSec (300 s by default); the runner's
 * stop used to leave it waiting, so the engine gave up on the runner only at its 5 s deadline,
 * twice while closing (the fuzz test's afterAll once took more than 10 s in CI). Now the gate
 * ends with the stop, the target stays `running`, and the next start resumes it from its
 * finished command, without running it again.
 */
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import type { SimAgent } from "@nbfleet/testkit/sim-agent";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import { afterEach, describe, expect, it } from "vitest";
import type { CreatedOperation } from "../api/operations/schemas.js";
import { commandIdPrefix } from "./actions.js";

let controller: TestController | undefined;
afterEach(async () => {
  await controller?.close();
  controller = undefined;
});

/** A rolling restart of one VM, left waiting at its health gate (its command succeeded). */
async function waitingAtGate(): Promise<{ c: TestController; agent: SimAgent; id: string }> {
  const provider = new SimProvider();
  const c = await startTestController({ provider });
  controller = c;
  const { app, adminToken: token } = c;
  expect((await call(app, "POST", "/v1/vms", { token, body: { name: "nb" } })).statusCode).toBe(201);
  const agent = await provider.connected("nb");
  await agent.waitFor(() => agent.commands().some((m) => m.name === "password.set"), 5000, "its password");
  const created = await call(app, "POST", "/v1/operations", {
    token,
    body: {
      action: "notebook.restart",
      selector: { names: ["nb"] },
      rolling: { enabled: true, healthTimeoutSec: 300 },
    },
  });
  expect(created.statusCode).toBe(201);
  const id = (created.json() as CreatedOperation).operation.id;
  const command = () =>
    app.nbfleet.store.db
      .selectFrom("commands")
      .select("state")
      .where("operation_id", "=", id)
      .executeTakeFirst();
  await expect.poll(async () => (await command())?.state, { timeout: 5000 }).toBe("succeeded");
  expect(await targetState(c, id)).toBe("running");
  expect(app.nbfleet.operations.runner(id)).toBeDefined();
  return { c, agent, id };
}

async function targetState(c: TestController, id: string): Promise<string | undefined> {
  const row = await c.app.nbfleet.store.db
    .selectFrom("operation_targets")
    .select("state")
    .where("operation_id", "=", id)
    .executeTakeFirst();
  return row?.state;
}

const restarts = (agent: SimAgent, id: string) =>
  agent.executed.filter((e) => e.command.id.startsWith(commandIdPrefix(id))).length;

describe("a rolling operation whose runner stops while its health gate waits", () => {
  it("stops at once, keeps the target running, and finishes it on the next start without a second restart", async () => {
    const { c, agent, id } = await waitingAtGate();
    const { operations } = c.app.nbfleet;

    await operations.pause();
    // The runner ended with the pause (not left behind at the engine's deadline).
    expect(operations.runner(id)).toBeUndefined();
    expect(await targetState(c, id)).toBe("running");
    expect((await operations.require(id)).state).toBe("running");

    await operations.start("in the test");
    await expect.poll(() => operations.runner(id) !== undefined, { timeout: 5000 }).toBe(true);
    // The resumed gate opens on the agent's next serving report.
    const opened = setInterval(() => agent.report(), 100);
    try {
      await expect
        .poll(async () => (await operations.require(id)).state, { timeout: 5000 })
        .toBe("succeeded");
    } finally {
      clearInterval(opened);
    }
    expect(restarts(agent, id)).toBe(1);
  });

  it("lets the controller close quickly", async () => {
    const { c } = await waitingAtGate();
    const startedAt = Date.now();
    await c.close();
    controller = undefined;
    // Was two 5 s deadlines in a row (the lease's stop, then the engine's close).
    expect(Date.now() - startedAt).toBeLessThan(5000);
  });
});
