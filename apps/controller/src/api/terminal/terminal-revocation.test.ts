/**
 * A shell opened with a token ends with it: revoking the token ends the client at once (a real
 * agent link and a real shell). Beside terminal.test.ts, whose file others are editing.
 */
import { TerminalCloseCode } from "@nbfleet/shared";
import { call } from "@nbfleet/testkit/http";
import { type Fleet, RecordedTerminal, startFleet } from "@nbfleet/testkit/terminal-fleet";
import { afterEach, describe, expect, it } from "vitest";
import type { CliError } from "../../cli/client.js";

let fleet: Fleet | undefined;
afterEach(async () => {
  await fleet?.close();
  fleet = undefined;
});

describe("GET /v1/vms/{name}/shell, its token revoked", () => {
  it("ends the client with the reason, and the revoked token cannot attach again", async () => {
    fleet = await startFleet();
    await fleet.addVm("box");
    const { app, adminToken, url } = fleet.controller;
    const created = await call(app, "POST", "/v1/tokens", {
      token: adminToken,
      body: { name: "leaving-admin", role: "admin" },
    });
    const { id, token } = created.json() as { id: string; token: string };
    const t = await RecordedTerminal.open({ baseUrl: url, token, vm: "box" });
    t.connection.input("echo before-$((1+1))\r");
    await t.waitText(/before-2/);

    expect((await call(app, "DELETE", `/v1/tokens/${id}`, { token: adminToken })).statusCode).toBe(204);
    const error = await t.waitFrame("error", 3000);
    expect(error).toMatchObject({ code: "NBF_AUTH_INVALID" });
    expect(error.message).toContain(`token ${id} was revoked`);
    expect(await t.waitClosed(3000)).toEqual({ code: TerminalCloseCode.ended, reason: "token revoked" });
    expect(app.nbfleet.streams.size).toBe(0);

    const again = await RecordedTerminal.open({ baseUrl: url, token, vm: "box", session: t.session }).catch(
      (e: CliError) => e,
    );
    expect(again).toMatchObject({ code: "NBF_AUTH_INVALID" });
  });
});
