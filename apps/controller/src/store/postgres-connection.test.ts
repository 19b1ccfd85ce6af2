/**
 * Opening the PostgreSQL store against a real server (its own, serving TLS with a certificate
 * from a private test CA): `sslmode=verify-full&sslrootcert=` as `pg` spells it, a CA that does
 * not match, and every way the connection can fail, each a clear error naming host:port and the
 * cause, never the password. A malformed URL is a configuration error, raised before any try.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { type AddressInfo, type Socket, connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "@nbfleet/testkit/ports";
import { type PostgresServer, startPostgres } from "@nbfleet/testkit/postgres";
import { makeTestCa } from "@nbfleet/testkit/test-ca";
import { eventually } from "@nbfleet/testkit/wait";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NbfError } from "../errors.js";
import { type Store, openStore } from "./store.js";

let server: PostgresServer;
let database: string;
let dir: string;
let caFile: string;
let otherCaFile: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "nbf-pg-tls-"));
  const ca = await makeTestCa("nbfleet PostgreSQL test CA");
  const other = await makeTestCa("some other CA");
  caFile = join(dir, "ca.pem");
  otherCaFile = join(dir, "other-ca.pem");
  writeFileSync(caFile, ca.caPem);
  writeFileSync(otherCaFile, other.caPem);
  server = await startPostgres({ tls: await ca.issueServer() });
  database = await server.createDatabase();
}, 120_000);

afterAll(async () => {
  await server?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const open = (url: string) =>
  openStore({ dataDir: "/nonexistent", databaseUrl: url, flushMs: 20, flushMaxItems: 100 });

function withParams(url: string, params: Record<string, string>): string {
  const parsed = new URL(url);
  for (const [name, value] of Object.entries(params)) parsed.searchParams.set(name, value);
  return parsed.toString();
}

async function failure(url: string): Promise<NbfError> {
  const error = await open(url).then(
    async (store) => {
      await store.close();
      return new Error("the store opened");
    },
    (error: unknown) => error,
  );
  if (!(error instanceof NbfError)) throw error;
  return error;
}

async function sessionUsesTls(store: Store): Promise<boolean> {
  const result = await sql<{
    ssl: boolean;
  }>`select ssl from pg_stat_ssl where pid = pg_backend_pid()`.execute(store.db);
  return result.rows[0]!.ssl;
}

describe("TLS as pg spells it in the URL", () => {
  it("verify-full with the server's CA connects over TLS and checks the name", async () => {
    const store = await open(withParams(database, { sslmode: "verify-full", sslrootcert: caFile }));
    try {
      expect(store.database?.state.status).toBe("ok");
      expect(await sessionUsesTls(store)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it("verify-full with a CA that did not sign the server's certificate is refused, naming the cause", async () => {
    const error = await failure(withParams(database, { sslmode: "verify-full", sslrootcert: otherCaFile }));
    expect(error.code).toBe("NBF_DATABASE_UNAVAILABLE");
    expect(error.status).toBe(503);
    expect(error.message).toContain(`PostgreSQL at 127.0.0.1:${server.port}`);
    expect(error.message).toMatch(/failed the TLS check: .*(certificate|self.signed).*sslrootcert/i);
    expect(error.message).not.toContain(server.password);
  });

  it("sslmode=require is verify-full in pg 8 (a private CA's server is refused without sslrootcert)", async () => {
    const error = await failure(withParams(database, { sslmode: "require" }));
    expect(error.message).toMatch(/failed the TLS check/);
  });

  it("uselibpqcompat=true&sslmode=require encrypts without verifying, as libpq does", async () => {
    const store = await open(withParams(database, { uselibpqcompat: "true", sslmode: "require" }));
    try {
      expect(await sessionUsesTls(store)).toBe(true);
    } finally {
      await store.close();
    }
  });

  it("without sslmode the session is not encrypted (the server allows both here)", async () => {
    const store = await open(database);
    try {
      expect(await sessionUsesTls(store)).toBe(false);
    } finally {
      await store.close();
    }
  });
});

describe("a connection that fails names host:port and the cause", () => {
  it("a refused port", async () => {
    const port = await freePort();
    const url = new URL(database);
    url.port = String(port);
    const error = await failure(url.toString());
    expect(error.code).toBe("NBF_DATABASE_UNAVAILABLE");
    expect(error.message).toContain(
      `PostgreSQL at 127.0.0.1:${port} is unavailable: refused the connection (ECONNREFUSED)`,
    );
  });

  it("a wrong password, without showing either password", async () => {
    const url = new URL(database);
    url.password = "not-the-password-7";
    const error = await failure(url.toString());
    expect(error.message).toContain(`PostgreSQL at 127.0.0.1:${server.port}`);
    expect(error.message).toContain('password authentication failed for user "nbfleet" (28P01)');
    expect(error.message).not.toContain("not-the-password-7");
    expect(error.message).not.toContain(server.password);
  });

  it("a database that does not exist", async () => {
    const url = new URL(database);
    url.pathname = "/no_such_db";
    const error = await failure(url.toString());
    expect(error.message).toContain('database "no_such_db" does not exist (3D000)');
  });

  it("a host name that does not resolve", async () => {
    const url = new URL(database);
    url.hostname = "nbfleet-db.invalid";
    const error = await failure(url.toString());
    expect(error.message).toMatch(/PostgreSQL at nbfleet-db\.invalid:\d+ is unavailable: does not resolve/);
  });

  it("a malformed URL or an unreadable CA file is a configuration error, before any try", async () => {
    for (const [url, problem] of [
      ["postgres://nbfleet@127.0.0.1:99999/db", "it is not a URL"],
      ["mysql://nbfleet@127.0.0.1:5432/db", "scheme mysql: is not postgres: or postgresql:"],
      ["postgres://nbfleet@127.0.0.1:5432/db?sslmode=always", "sslmode=always is not one of"],
      [
        `postgres://nbfleet@127.0.0.1:5432/db?sslrootcert=${join(dir, "missing.pem")}`,
        "cannot be read (ENOENT)",
      ],
      ["postgres://[not a url", "it is not a URL"],
    ] as const) {
      const error = await failure(url);
      expect(error.code).toBe("NBF_CONFIG_INVALID");
      expect(error.message).toContain(problem);
    }
  });
});

describe("a connection cut under a running store", () => {
  it("a checked-out client whose connection ends between statements neither ends the process nor is reused", async () => {
    const store = await open(database);
    try {
      const error = await store.db
        .transaction()
        .execute(async (trx) => {
          const { rows } = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(trx);
          // Cut from another session while this client sits idle inside the transaction: pg
          // emits 'error' on a client pg-pool no longer listens to.
          const killer = await open(database);
          try {
            await sql`select pg_terminate_backend(${rows[0]!.pid})`.execute(killer.db);
          } finally {
            await killer.close();
          }
          await new Promise((resolve) => setTimeout(resolve, 200));
          await sql`select 1`.execute(trx);
        })
        .then(
          () => new Error("the transaction committed"),
          (error: unknown) => error,
        );
      expect(error).toBeInstanceOf(NbfError);
      expect((error as NbfError).code).toBe("NBF_DATABASE_UNAVAILABLE");
      expect((error as NbfError).message).toContain(`PostgreSQL at 127.0.0.1:${server.port}`);
      // The broken client was dropped: the next statements get a working connection.
      for (let i = 0; i < 12; i++) {
        const { rows } = await sql<{ one: number }>`select 1 as one`.execute(store.db);
        expect(rows[0]!.one).toBe(1);
      }
      expect(store.database?.state.status).toBe("ok");
    } finally {
      await store.close();
    }
  });
});

/** A TCP forwarder to the test server that can turn into a black hole: bytes stop, nothing is refused. */
async function blackHoleProxy(port: number) {
  const sockets = new Set<Socket>();
  let dark = false;
  const proxy = createServer((client) => {
    sockets.add(client);
    client.on("error", () => {});
    client.on("close", () => sockets.delete(client));
    if (dark) return;
    const upstream = connect(port, "127.0.0.1");
    sockets.add(upstream);
    upstream.on("error", () => client.destroy());
    upstream.on("close", () => sockets.delete(upstream));
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  return {
    port: (proxy.address() as AddressInfo).port,
    /** Every byte in flight stops; new connections are accepted and never answered. */
    goDark() {
      dark = true;
      for (const socket of sockets) socket.pause();
    },
    /** The network is back: the connections that went silent are gone, new ones get through. */
    light() {
      dark = false;
      for (const socket of sockets) socket.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        proxy.close(() => resolve());
      }),
  };
}

describe("a database that stops answering without refusing (a black hole)", () => {
  it("is found unreachable by the probe's deadline, then refused at once instead of waited for", async () => {
    const proxy = await blackHoleProxy(server.port);
    const url = new URL(database);
    url.port = String(proxy.port);
    const store = await open(url.toString());
    try {
      await sql`select 1`.execute(store.db);
      proxy.goDark();
      const down = await eventually(
        async () => store.database!.state,
        (state) => state.status === "unreachable",
        20_000,
        100,
      );
      expect(down).toMatchObject({
        address: `127.0.0.1:${proxy.port}`,
        error: "did not answer in time (connection timeout)",
      });
      const started = Date.now();
      const error = await sql`select 1`.execute(store.db).then(
        () => null,
        (error: unknown) => error,
      );
      expect(Date.now() - started).toBeLessThan(200);
      expect((error as NbfError).code).toBe("NBF_DATABASE_UNAVAILABLE");
      expect((error as NbfError).message).toContain("did not answer in time");

      proxy.light();
      await eventually(
        async () => store.database!.state.status,
        (status) => status === "ok",
        10_000,
        100,
      );
      const { rows } = await sql<{ one: number }>`select 1 as one`.execute(store.db);
      expect(rows[0]!.one).toBe(1);
    } finally {
      await store.close();
      await proxy.close();
    }
  }, 40_000);
});
