/**
 * `nbfleet server` started while PostgreSQL is not ready (issue 12 §1): a malformed database
 * URL stops it at once with one line naming the problem (never the password); a refused port,
 * a wrong password or a database that does not exist yet are logged with host:port and cause
 * and retried with backoff while /healthz answers 503 with the cause, and the controller comes
 * up by itself once the database side is fixed.
 */
import type { ChildProcess } from "node:child_process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { type PostgresServer, createDatabase, startPostgres } from "@nbfleet/testkit/postgres";
import { captureOutput, spawnCli, stopChild } from "@nbfleet/testkit/processes";
import { eventually } from "@nbfleet/testkit/wait";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";

const TOKEN = "nbf_e2e-postgres-startup-0123456789";
const dataDir = makeDataDir("nbf-pg-startup-");
const children: ChildProcess[] = [];
let server: PostgresServer | undefined;

afterAll(async () => {
  await Promise.all(children.map((child) => stopChild(child)));
  await server?.remove();
});

function nbfleetServer(databaseUrl: string, port: number) {
  const child = spawnCli(["server", "--listen", `127.0.0.1:${port}`, "--data-dir", dataDir], {
    stdio: ["ignore", "pipe", "pipe"],
    env: {
      ...process.env,
      NBFLEET_ADMIN_TOKEN: TOKEN,
      NBFLEET_LOG_LEVEL: "warn",
      NBFLEET_DATABASE_URL: databaseUrl,
    },
  });
  children.push(child);
  const output = captureOutput(child);
  const healthz = async () => {
    const response = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => null);
    // biome-ignore lint/suspicious/noExplicitAny: test JSON
    return response ? { status: response.status, body: (await response.json()) as any } : null;
  };
  return { child, output, healthz };
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

describe("nbfleet server before PostgreSQL is ready", () => {
  it("stops at once on a malformed URL or an unreadable CA file, naming the problem, not the password", async () => {
    for (const [url, problem] of [
      ["postgres://nbfleet:hunter2-secret@127.0.0.1:99999/db", "it is not a URL"],
      [
        "postgres://nbfleet:hunter2-secret@127.0.0.1:5432/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        "sslrootcert=/nonexistent/ca.pem cannot be read (ENOENT)",
      ],
    ]) {
      const started = Date.now();
      const { child, output } = nbfleetServer(url!, await freePort());
      expect(await exited(child)).toBe(1);
      expect(Date.now() - started).toBeLessThan(20_000);
      const text = output();
      expect(text).toContain(`invalid controller configuration (databaseUrl): ${problem}`);
      expect(text).toContain("[NBF_CONFIG_INVALID]");
      expect(text).not.toContain("hunter2-secret");
    }
  }, 60_000);

  it("waits for a refused port, a wrong password and a missing database, then comes up by itself", async () => {
    const pgPort = await freePort();
    const apiPort = await freePort();
    const { child, output, healthz } = nbfleetServer(
      `postgres://nbfleet:first-secret@127.0.0.1:${pgPort}/fleet_db`,
      apiPort,
    );

    // Nothing listens on the database port yet: logged, retried, /healthz 503 with the cause.
    await eventually(
      async () => output(),
      (text) =>
        text.includes(
          `PostgreSQL at 127.0.0.1:${pgPort}: refused the connection (ECONNREFUSED); retrying in`,
        ),
      60_000,
      200,
    );
    const waiting = await eventually(healthz, (r) => r?.status === 503, 10_000, 200);
    expect(waiting!.body).toMatchObject({
      status: "degraded",
      database: {
        status: "unreachable",
        address: `127.0.0.1:${pgPort}`,
        error: "refused the connection (ECONNREFUSED)",
      },
    });
    const api = await fetch(`http://127.0.0.1:${apiPort}/v1/vms`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(api.status).toBe(503);
    expect(((await api.json()) as { error: { code: string } }).error.code).toBe("NBF_DATABASE_UNAVAILABLE");

    // The server comes up with another password: authentication fails, still retried.
    server = await startPostgres({ port: pgPort });
    await eventually(
      async () => output(),
      (text) => text.includes('password authentication failed for user \\"nbfleet\\" (28P01)'),
      60_000,
      200,
    );
    expect(child.exitCode).toBeNull();
    expect((await healthz())?.status).toBe(503);

    // The DBA sets the password we have: now the database is missing.
    const admin = new pg.Client({ connectionString: server.url });
    await admin.connect();
    try {
      await admin.query("ALTER USER nbfleet PASSWORD 'first-secret'");
    } finally {
      await admin.end();
    }
    await eventually(
      async () => output(),
      (text) => text.includes('database \\"fleet_db\\" does not exist (3D000)'),
      60_000,
      200,
    );
    expect(child.exitCode).toBeNull();

    // …and creates it: the controller migrates it and serves.
    const asDba = new URL(server.url);
    asDba.password = "first-secret";
    await createDatabase(asDba.toString(), "fleet_db");
    const up = await eventually(healthz, (r) => r?.status === 200, 60_000, 200);
    expect(up!.body.database).toMatchObject({ status: "ok", address: `127.0.0.1:${pgPort}` });
    const vms = await fetch(`http://127.0.0.1:${apiPort}/v1/vms`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(vms.status).toBe(200);
    const text = output();
    expect(text).not.toContain("first-secret");
    expect(text).not.toContain(server.password);
    expect(child.exitCode).toBeNull();
  }, 240_000);
});
