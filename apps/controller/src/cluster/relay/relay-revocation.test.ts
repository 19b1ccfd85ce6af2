/**
 * Revocations across replicas (two in one process on one PostgreSQL database, as in
 * relay.test.ts): A serves the client, B holds the agent and is where the token is revoked.
 * A learns of it only from the event feed; B ends the relayed shell's leg it serves.
 */
import { TerminalCloseCode } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { freshDatabaseUrl } from "@nbfleet/testkit/postgres-database";
import { SseReader } from "@nbfleet/testkit/sse-reader";
import { type Fleet, RecordedTerminal, startFleet } from "@nbfleet/testkit/terminal-fleet";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";

let a: TestController | undefined;
let b: Fleet | undefined;
afterEach(async () => {
  await a?.close();
  await b?.close();
  a = b = undefined;
}, 30_000);

describe("revocation across replicas", () => {
  it("a token revoked on B ends its event stream and its relayed shell on A", async () => {
    const settings = { databaseUrl: await freshDatabaseUrl(), replicaHeartbeatSec: 600 };
    a = await startTestController({ settings: { ...settings, adminToken: "nbf_revocation-test-admin" } });
    b = await startFleet({ ...settings, adminToken: "nbf_revocation-test-admin" });
    await b.addVm("box");
    const created = await call(b.controller.app, "POST", "/v1/tokens", {
      token: b.controller.adminToken,
      body: { name: "leaver", role: "admin" },
    });
    const { id, token } = created.json() as { id: string; token: string };
    const { app: appA, url: urlA } = a;
    await eventually(
      async () => appA.nbfleet.relay.peerFor("box"),
      (peer) => peer !== null,
    );
    const events = new SseReader(`${urlA}/v1/events`, { token });
    expect(await events.ready).toBe(200);
    const shell = await RecordedTerminal.open({ baseUrl: urlA, token, vm: "box" });
    shell.connection.input("echo relayed-$((2+3))\r");
    await shell.waitText(/relayed-5/);
    expect(appA.nbfleet.streams.size).toBe(2);

    const revoke = await call(b.controller.app, "DELETE", `/v1/tokens/${id}`, {
      token: b.controller.adminToken,
    });
    expect(revoke.statusCode).toBe(204);
    expect((await shell.waitClosed(5000)).code).toBe(TerminalCloseCode.ended);
    expect(shell.frames.find((f) => f.type === "error")).toMatchObject({ code: "NBF_AUTH_INVALID" });
    // Only the feed tells A: the event stream is A's alone.
    await eventually(
      async () => events.isEnded,
      (ended) => ended,
      5000,
    );
    await eventually(
      async () => appA.nbfleet.streams.size + b!.controller.app.nbfleet.streams.size,
      (n) => n === 0,
    );
  }, 60_000);
});
