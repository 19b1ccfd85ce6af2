/**
 * PostgreSQL stopped for 20 s and started again under a running controller (issue 12 §4): the
 * controller stays up; /healthz says the database is unreachable (503, with the cause) within a
 * few seconds and ok after; API calls that need the database answer NBF_DATABASE_UNAVAILABLE at
 * once instead of hanging; the log has one line when it goes and one when it is back; agents
 * stay connected (one whose link drops is told 503 and comes back after); the state they reported during the outage is in the database afterwards; and
 * what was accepted before (VMs, a finished command) is still there.
 */
import { Writable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { type PostgresServer, startPostgres } from "@nbfleet/testkit/postgres";
import { SimAgent, SimConnectError } from "@nbfleet/testkit/sim-agent";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import { eventually } from "@nbfleet/testkit/wait";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultSettings } from "../../src/config/settings.js";
import { type NbfleetApp, buildServer, listen } from "../../src/server.js";

const OUTAGE_MS = 20_000;
let server: PostgresServer;
let app: NbfleetApp;
let url: string;
let token: string;
const provider = new SimProvider();
const logLines: { level: number; msg: string; err?: unknown }[] = [];

beforeAll(async () => {
  server = await startPostgres();
  const databaseUrl = await server.createDatabase();
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split("\n").filter(Boolean)) logLines.push(JSON.parse(line));
      done();
    },
  });
  app = await buildServer(
    {
      ...defaultSettings(),
      dataDir: makeDataDir(),
      listen: "127.0.0.1:0",
      databaseUrl,
      logLevel: "info",
      stateFlushMs: 50,
      commandSweepMs: 200,
    },
    { provider, logger: pino({ level: "info" }, sink) },
  );
  url = await listen(app);
  token = app.nbfleet.adminToken.token!;
}, 120_000);

afterAll(async () => {
  await app?.close();
  await server?.remove();
});

async function api(method: string, path: string, body?: unknown) {
  const started = Date.now();
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body ? { "content-type": "application/json" } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await response.text();
  // biome-ignore lint/suspicious/noExplicitAny: test JSON
  return { status: response.status, body: (text ? JSON.parse(text) : null) as any, ms: Date.now() - started };
}

describe("PostgreSQL stopped for 20 s and started again", () => {
  it("keeps the controller up, reports the outage, keeps what agents said, and loses nothing", async () => {
    // Accepted before the outage: two VMs with connected agents, a finished command.
    for (const name of ["pg-a", "pg-b"]) expect((await api("POST", "/v1/vms", { name })).status).toBe(201);
    const agentA = await provider.connected("pg-a");
    const agentB = await provider.connected("pg-b");
    const restart = await api("POST", "/v1/vms/pg-a/notebook/restart");
    expect(restart.status).toBe(202);
    expect((await api("GET", `/v1/commands/${restart.body.id}?wait=5`)).body.state).toBe("succeeded");
    await eventually(
      () => api("GET", "/v1/vms?health=healthy"),
      (r) => r.body.items?.length === 2,
    );
    const healthy = await api("GET", "/healthz");
    expect(healthy.status).toBe(200);
    expect(healthy.body.database).toMatchObject({ status: "ok", address: `127.0.0.1:${server.port}` });

    const stoppedAt = Date.now();
    await server.stop("fast");

    // /healthz notices within a few seconds, with the cause, and never waits on a connect timeout.
    const down = await eventually(
      () => api("GET", "/healthz"),
      (r) => r.status === 503,
      8000,
    );
    expect(Date.now() - stoppedAt).toBeLessThan(8000);
    expect(down.ms).toBeLessThan(2000);
    expect(down.body).toMatchObject({
      status: "degraded",
      store: { status: "error" },
      database: { status: "unreachable", address: `127.0.0.1:${server.port}` },
    });
    expect(down.body.database.error).toMatch(/ECONNREFUSED|ENOENT|closed the connection|shutting down/);

    // An API call that needs the database fails at once with the catalogue's 503.
    const list = await api("GET", "/v1/vms");
    expect(list.status).toBe(503);
    expect(list.ms).toBeLessThan(2000);
    expect(list.body.error.code).toBe("NBF_DATABASE_UNAVAILABLE");
    expect(list.body.error.message).toContain(`PostgreSQL at 127.0.0.1:${server.port} is unavailable`);

    // Agents keep talking: what they report now is kept for the database.
    agentB.setNotebook("stopped");
    // An agent whose link drops now cannot be admitted (its credential is in the database): it
    // is told 503, which agents retry, not 401, which they would give up on.
    agentA.terminate();
    const refused = await new SimAgent({ url, token: agentA.credential! }).connect().then(
      () => null,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(SimConnectError);
    expect((refused as SimConnectError).httpStatus).toBe(503);
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - stoppedAt)));
    expect(agentB.connected).toBe(true);
    expect(app.nbfleet.store.writer.health().pendingRows).toBeGreaterThan(0);
    await server.start();

    const up = await eventually(
      () => api("GET", "/healthz"),
      (r) => r.status === 200 && r.body.status === "ok",
      15_000,
    );
    expect(up.body.database.status).toBe("ok");
    expect(up.body.store).toMatchObject({ status: "ok", pendingRows: 0 });

    // The state reported during the outage reached the database; nothing from before is lost.
    const b = await eventually(
      () => api("GET", "/v1/vms/pg-b"),
      (r) => r.status === 200 && r.body.notebook.state === "stopped",
      10_000,
    );
    expect(b.body.agent.status).toBe("connected");
    const backA = new SimAgent({ url, token: agentA.credential! });
    await backA.connect();
    await eventually(
      () => api("GET", "/v1/vms/pg-a"),
      (r) => r.body.agent.status === "connected" && r.body.health.status === "healthy",
    );
    expect((await api("GET", `/v1/commands/${restart.body.id}`)).body.state).toBe("succeeded");
    const names = (await api("GET", "/v1/vms")).body.items.map((vm: { name: string }) => vm.name).sort();
    expect(names).toEqual(["pg-a", "pg-b"]);
    // And the database still takes new work.
    const again = await api("POST", "/v1/vms/pg-b/notebook/start");
    expect((await api("GET", `/v1/commands/${again.body.id}?wait=5`)).body.state).toBe("succeeded");
    backA.close();

    // One line when it went, one when it came back: not one per failed query or retry.
    const database = logLines.filter((line) => /^PostgreSQL at /.test(line.msg));
    expect(database.map((line) => line.msg.replace(/: .*/, ""))).toEqual([
      `PostgreSQL at 127.0.0.1:${server.port} is unreachable`,
      `PostgreSQL at 127.0.0.1:${server.port} answers again`,
    ]);
    const errors = logLines.filter((line) => line.level >= 50 && !/^PostgreSQL at /.test(line.msg));
    expect(errors.map((line) => line.msg)).toEqual([]);
  }, 120_000);
});
