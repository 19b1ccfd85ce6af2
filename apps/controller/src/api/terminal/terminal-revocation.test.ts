/**
 * A shell opened with a token ends with it: revoking the token ends the client at once and the
 * session with its process (a real agent link and a real shell).
 */
import { existsSync } from "node:fs";
import { TerminalCloseCode } from "@nbfleet/shared";
import { call } from "@nbfleet/testkit/http";
import { type Fleet, RecordedTerminal, startFleet } from "@nbfleet/testkit/terminal-fleet";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";
import type { CliError } from "../../cli/client.js";

let fleet: Fleet | undefined;
afterEach(async () => {
  await fleet?.close();
  fleet = undefined;
});

describe("GET /v1/vms/{name}/shell, its token revoked", () => {
  it("ends the client with the reason and the session with its shell; the token cannot attach again", async () => {
    fleet = await startFleet();
    await fleet.addVm("box");
    const { app, adminToken, url } = fleet.controller;
    const created = await call(app, "POST", "/v1/tokens", {
      token: adminToken,
      body: { name: "leaving-admin", role: "admin" },
    });
    const { id, token } = created.json() as { id: string; token: string };
    const t = await RecordedTerminal.open({ baseUrl: url, token, vm: "box" });
    t.connection.input("echo before-$((1+1)) shell-pid-$$\r");
    const shellPid = Number((await t.waitText(/shell-pid-(\d+)/)).match(/shell-pid-(\d+)/)![1]);
    expect(existsSync(`/proc/${shellPid}`)).toBe(true);

    expect((await call(app, "DELETE", `/v1/tokens/${id}`, { token: adminToken })).statusCode).toBe(204);
    const error = await t.waitFrame("error", 3000);
    expect(error).toMatchObject({ code: "NBF_AUTH_INVALID" });
    expect(error.message).toContain(`token ${id} was revoked`);
    expect(await t.waitClosed(3000)).toEqual({ code: TerminalCloseCode.ended, reason: "token revoked" });
    expect(app.nbfleet.streams.size).toBe(0);
    // Not only detached: a leaked token's shell must not go on running.
    const [audit] = await eventually(
      () => app.nbfleet.terminals.list({ vmName: "box", limit: 1 }),
      (rows) => rows[0]?.endReason === "revoked",
      5000,
    );
    expect(audit).toMatchObject({ id: t.session, endReason: "revoked" });
    await eventually(
      async () => existsSync(`/proc/${shellPid}`),
      (alive) => !alive,
      5000,
    );

    const again = await RecordedTerminal.open({ baseUrl: url, token, vm: "box", session: t.session }).catch(
      (e: CliError) => e,
    );
    expect(again).toMatchObject({ code: "NBF_AUTH_INVALID" });
  });
});
