/**
 * Log tails and follows through the real controller and a real agent link (AgentStreams reading
 * real files written by real processes; the agent's core is a fake).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { capLogFile, openAppend } from "@nbfleet/agent";
import { CAPABILITY_LOGS_FOLLOW, PROTOCOL_VERSION } from "@nbfleet/shared";
import { call } from "@nbfleet/testkit/http";
import { type Fleet, startFleet } from "@nbfleet/testkit/terminal-fleet";
import { eventually } from "@nbfleet/testkit/wait";
import { Waiters } from "@nbfleet/testkit/waiters";
import { afterEach, describe, expect, it } from "vitest";

let fleet: Fleet | undefined;
const children: ChildProcess[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
  await fleet?.close();
  fleet = undefined;
});

/** A notebook-like writer: its own process appending numbered lines to the log, then exiting. */
async function writer(file: string, prefix: string, count: number): Promise<void> {
  const handle = await openAppend(file);
  const script = `let i=0;const t=setInterval(()=>{require("fs").writeSync(3,"${prefix} "+(i++)+"\\n");if(i>=${count})clearInterval(t)},5)`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "ignore", "ignore", handle.fd] });
  await handle.close();
  children.push(child);
  await new Promise((resolve) => child.on("exit", resolve));
}

/** Reads a streaming response as NDJSON records, recorded as they arrive. */
function follow(url: string, token: string) {
  const abort = new AbortController();
  const records: Array<{ line?: string; end?: { code: string; message: string } }> = [];
  const waiters = new Waiters();
  let status = 0;
  let contentType = "";
  const done = (async () => {
    const response = await fetch(url, {
      headers: { authorization: `Bearer ${token}` },
      signal: abort.signal,
    });
    status = response.status;
    contentType = response.headers.get("content-type") ?? "";
    waiters.notify();
    let buffer = "";
    for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
      buffer += Buffer.from(chunk).toString("utf8");
      let newline = buffer.indexOf("\n");
      while (newline >= 0) {
        records.push(JSON.parse(buffer.slice(0, newline)));
        buffer = buffer.slice(newline + 1);
        newline = buffer.indexOf("\n");
      }
      waiters.notify();
    }
  })().catch(() => undefined);
  return {
    records,
    done,
    abort: () => abort.abort(),
    lines: () => records.filter((r) => r.line !== undefined).map((r) => r.line),
    until: (what: string, probe: () => boolean) => waiters.until(() => probe() || undefined, what, 10_000),
    status: () => status,
    contentType: () => contentType,
  };
}

describe("GET /v1/vms/{name}/logs", () => {
  it("gives the last lines as text or NDJSON, of the notebook's or the agent's log, to a viewer", async () => {
    fleet = await startFleet();
    await fleet.addVm("box");
    await writeFile(path.join(fleet.logDir, "box-notebook.log"), "a\nb\nc\nd\ne\n");
    await writeFile(path.join(fleet.logDir, "box-agent.log"), '{"msg":"agent line"}\n');
    const viewer = await fleet.token("viewer");
    const text = await call(fleet.controller.app, "GET", "/v1/vms/box/logs?lines=3", { token: viewer });
    expect(text.statusCode).toBe(200);
    expect(text.headers["content-type"]).toMatch(/^text\/plain/);
    expect(text.body).toBe("c\nd\ne\n");
    const ndjson = await call(fleet.controller.app, "GET", "/v1/vms/box/logs?lines=2&format=ndjson", {
      token: viewer,
    });
    expect(ndjson.headers["content-type"]).toMatch(/^application\/x-ndjson/);
    expect(
      ndjson.body
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l)),
    ).toEqual([{ line: "d" }, { line: "e" }]);
    const agent = await call(fleet.controller.app, "GET", "/v1/vms/box/logs?source=agent", {
      token: viewer,
      headers: { accept: "application/x-ndjson" },
    });
    expect(JSON.parse(agent.body)).toEqual({ line: '{"msg":"agent line"}' });
  });

  it("follows across a restart of the writing process and log capping, until the agent goes", async () => {
    fleet = await startFleet();
    const agent = await fleet.addVm("box");
    const file = path.join(fleet.logDir, "box-notebook.log");
    await writeFile(file, "old line\n");
    const f = follow(
      `${fleet.controller.url}/v1/vms/box/logs?follow=1&lines=1&format=ndjson`,
      fleet.controller.adminToken,
    );
    await f.until("the tail", () => f.lines().length === 1);
    expect(f.status()).toBe(200);
    expect(f.contentType()).toMatch(/ndjson/);

    await writer(file, "first", 30);
    await f.until("the first process's lines", () => f.lines().length === 31);
    // The agent caps its logs copytruncate-style; a follow picks up at the new start.
    expect(await capLogFile(file, 10)).toBe(true);
    await writer(file, "second", 30);
    await f.until("the restarted process's lines", () => f.lines().length === 61);
    expect(f.lines()).toEqual([
      "old line",
      ...Array.from({ length: 30 }, (_, i) => `first ${i}`),
      ...Array.from({ length: 30 }, (_, i) => `second ${i}`),
    ]);

    await agent.link.stop();
    await f.until("the end record", () => f.records.some((r) => r.end));
    await f.done;
    expect(f.records.at(-1)?.end).toMatchObject({ code: "NBF_AGENT_NOT_CONNECTED" });
    expect(f.records.at(-1)?.end?.message).toMatch(/agent disconnected/);
  });

  it("stops the follow on the agent when the client goes away", async () => {
    fleet = await startFleet();
    const agent = await fleet.addVm("box");
    const f = follow(
      `${fleet.controller.url}/v1/vms/box/logs?follow=true&format=ndjson`,
      fleet.controller.adminToken,
    );
    await eventually(
      async () => agent.streams.logStreams,
      (n) => n === 1,
    );
    await f.until("the response head", () => f.status() === 200);
    f.abort();
    await eventually(
      async () => agent.streams.logStreams + fleet!.controller.app.nbfleet.logs.openCount,
      (n) => n === 0,
    );
  });

  it("ends a follow when its token is revoked, with the reason, and stops it on the agent", async () => {
    fleet = await startFleet();
    const agent = await fleet.addVm("box");
    const { app, adminToken, url } = fleet.controller;
    const created = await call(app, "POST", "/v1/tokens", {
      token: adminToken,
      body: { name: "log-watcher", role: "viewer" },
    });
    const viewer = created.json() as { id: string; token: string };
    const f = follow(`${url}/v1/vms/box/logs?follow=1&format=ndjson`, viewer.token);
    await f.until("the response head", () => f.status() === 200);
    await eventually(
      async () => agent.streams.logStreams,
      (n) => n === 1,
    );

    expect((await call(app, "DELETE", `/v1/tokens/${viewer.id}`, { token: adminToken })).statusCode).toBe(
      204,
    );
    await f.until("the end record", () => f.records.some((r) => r.end));
    await f.done;
    expect(f.records.at(-1)?.end).toMatchObject({ code: "NBF_AUTH_INVALID" });
    expect(f.records.at(-1)?.end?.message).toContain(`token ${viewer.id} was revoked`);
    await eventually(
      async () => agent.streams.logStreams + app.nbfleet.logs.openCount + app.nbfleet.streams.size,
      (n) => n === 0,
    );
  });

  it("answers a tail with the lines asked for, and ends one an agent floods with a clear error", async () => {
    fleet = await startFleet();
    const agent = await fleet.addRawVm("box", [CAPABILITY_LOGS_FOLLOW]);
    let flood = true;
    agent.ws.on("message", (data) => {
      const message = JSON.parse(String(data));
      if (message.type !== "logs.open") return;
      const say = (body: Record<string, unknown>) =>
        agent.ws.send(
          JSON.stringify({ v: PROTOCOL_VERSION, id: `m-${Math.random()}`, stream: message.stream, ...body }),
        );
      // About 19 MB for a tail of 10 lines (60 lines of 16,000 characters a message), or 50 lines.
      const batches = flood
        ? Array.from({ length: 20 }, () => Array.from({ length: 60 }, () => "x".repeat(16_000)))
        : [Array.from({ length: 50 }, (_, i) => `line ${i}`)];
      for (const lines of batches) say({ type: "logs.data", lines });
      say({ type: "logs.end" });
    });
    const { app, adminToken: token } = fleet.controller;

    const flooded = await call(app, "GET", "/v1/vms/box/logs?lines=10", { token });
    expect(flooded.statusCode).toBe(502);
    expect(flooded.json().error.code).toBe("NBF_LOGS_FAILED");
    expect(flooded.json().error.message).toMatch(
      /sent more than 8 MiB for the last 10 lines.*ask for fewer lines/,
    );
    // The agent was told to stop; its link and the controller's books are fine.
    await eventually(
      async () => agent.messages.filter((m) => (m as { type: string }).type === "logs.close").length,
      (closes) => closes === 1,
    );
    expect(fleet.controller.app.nbfleet.gateway.isConnected("box")).toBe(true);
    expect(fleet.controller.app.nbfleet.logs.openCount).toBe(0);

    flood = false;
    const tail = await call(app, "GET", "/v1/vms/box/logs?lines=10", { token });
    expect(tail.statusCode).toBe(200);
    expect(tail.body).toBe(Array.from({ length: 10 }, (_, i) => `line ${40 + i}\n`).join(""));
  });

  it("says why when it cannot: unknown VM, agent offline, old agent, bad query", async () => {
    fleet = await startFleet();
    await fleet.addVm("box");
    await fleet.addVm("old", null);
    const token = fleet.controller.adminToken;
    const get = (url: string) => call(fleet!.controller.app, "GET", url, { token });
    expect((await get("/v1/vms/ghost/logs")).json().error.code).toBe("NBF_VM_NOT_FOUND");
    const old = await get("/v1/vms/old/logs");
    expect(old.statusCode).toBe(409);
    expect(old.json().error.code).toBe("NBF_AGENT_UNSUPPORTED");
    await fleet.agents.get("old")!.link.stop();
    await eventually(
      async () => fleet!.controller.app.nbfleet.gateway.isConnected("old"),
      (connected) => !connected,
    );
    const offline = await get("/v1/vms/old/logs");
    expect(offline.json().error).toMatchObject({ code: "NBF_AGENT_NOT_CONNECTED" });
    expect(offline.json().error.message).toMatch(/reading its logs needs a live agent/);
    const bad = await get("/v1/vms/box/logs?lines=-1&source=kernel");
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.code).toBe("NBF_INVALID_QUERY");
  });
});
