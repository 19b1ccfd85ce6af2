/**
 * A real PostgreSQL server for tests: Debian's postgresql 15 (`initdb` + `pg_ctl`), in a
 * directory of its own under the temp dir, on a loopback port with its unix socket beside its
 * data, removed by `remove()`. Run as root (CI), the server runs as the unprivileged `postgres`
 * user, since PostgreSQL refuses to run as root.
 *
 * The suite shares one server (postgres-global-setup.ts starts it; `freshDatabaseUrl()` gives
 * each test file a database of its own); a test that stops the server starts its own. A process
 * that exits without `remove()` (a bench stopped by a signal) still stops its servers.
 */
import { execFile, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";
import { freePort } from "./ports.js";

const run = promisify(execFile);

export const POSTGRES_BIN = "/usr/lib/postgresql/15/bin";
export const POSTGRES_USER = "nbfleet";

export interface PostgresServer {
  /** Superuser URL of the `postgres` database (password in it; loopback only). */
  readonly url: string;
  readonly port: number;
  readonly password: string;
  /** The directory of its unix socket (`.s.PGSQL.<port>`; local connections need no password). */
  readonly socketDir: string;
  /** A new, empty database; its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Stops the server (`immediate`: as if it crashed; the data stays for `start()`). */
  stop(mode?: "fast" | "immediate"): Promise<void>;
  /** Starts a stopped server again on the same port. */
  start(): Promise<void>;
  /** Stops the server and deletes its directory. */
  remove(): Promise<void>;
  /** The server's log so far (for a failing test's message). */
  log(): string;
}

export interface PostgresServerOptions {
  port?: number;
  /** Serve TLS (`ssl=on`) with this certificate and key, e.g. from makeTestCa().issueServer(). */
  tls?: { certPem: string; keyPem: string };
  /** More server settings (`name=value`), e.g. to load pg_stat_statements for a benchmark. */
  settings?: string[];
}

export async function startPostgres(options: PostgresServerOptions = {}): Promise<PostgresServer> {
  if (!existsSync(join(POSTGRES_BIN, "initdb"))) {
    throw new Error(
      `PostgreSQL 15 is not installed (${POSTGRES_BIN}/initdb is missing): run tools/ensure-system-packages.sh as root`,
    );
  }
  const dir = mkdtempSync(join(tmpdir(), "nbf-pg-"));
  const data = join(dir, "data");
  const logFile = join(dir, "server.log");
  const password = randomBytes(12).toString("hex");
  const passwordFile = join(dir, "password");
  writeFileSync(passwordFile, password, { mode: 0o600 });
  // PostgreSQL refuses a key file that others may read or that the server's user does not own.
  const tlsFiles = options.tls ? { cert: join(dir, "server.crt"), key: join(dir, "server.key") } : undefined;
  if (options.tls && tlsFiles) {
    writeFileSync(tlsFiles.cert, options.tls.certPem, { mode: 0o600 });
    writeFileSync(tlsFiles.key, options.tls.keyPem, { mode: 0o600 });
  }
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const { uid, gid } = postgresIds();
    chmodSync(dir, 0o700);
    chownSync(dir, uid, gid);
    chownSync(passwordFile, uid, gid);
    if (tlsFiles) for (const file of [tlsFiles.cert, tlsFiles.key]) chownSync(file, uid, gid);
  }
  const command = (tool: string, args: string[]): [string, string[]] =>
    asRoot
      ? ["runuser", ["-u", "postgres", "--", join(POSTGRES_BIN, tool), ...args]]
      : [join(POSTGRES_BIN, tool), args];
  const as = (tool: string, args: string[]) => run(...command(tool, args));

  await as("initdb", [
    "-D",
    data,
    "-U",
    POSTGRES_USER,
    "--pwfile",
    passwordFile,
    "--auth-host=scram-sha-256",
    "--auth-local=trust",
    "-E",
    "UTF8",
    "--no-sync",
  ]);
  rmSync(passwordFile);
  const port = options.port ?? (await freePort());
  const settings = [
    `-p ${port}`,
    `-k ${dir}`,
    "-c listen_addresses=127.0.0.1",
    "-c max_connections=400",
    // A test server: durability across a power cut is not a test's concern.
    "-c fsync=off",
    "-c synchronous_commit=off",
    "-c full_page_writes=off",
    ...(tlsFiles
      ? ["-c ssl=on", `-c ssl_cert_file=${tlsFiles.cert}`, `-c ssl_key_file=${tlsFiles.key}`]
      : []),
    ...(options.settings ?? []).map((setting) => `-c ${setting}`),
  ].join(" ");
  const start = () =>
    as("pg_ctl", ["-D", data, "-l", logFile, "-o", settings, "-w", "-t", "60", "start"]).then(() => {});
  const stop = (mode: "fast" | "immediate" = "fast") =>
    as("pg_ctl", ["-D", data, "-m", mode, "-w", "-t", "60", "stop"]).then(() => {});
  await start();
  let running = true;
  // PostgreSQL is no child of ours (pg_ctl detaches it): nothing else stops it when we exit.
  const stopOnExit = () => {
    if (running) spawnSync(...command("pg_ctl", ["-D", data, "-m", "immediate", "-w", "-t", "10", "stop"]));
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", stopOnExit);

  const url = `postgres://${POSTGRES_USER}:${password}@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    password,
    socketDir: dir,
    createDatabase: (name) => createDatabase(url, name),
    async stop(mode) {
      await stop(mode);
      running = false;
    },
    async start() {
      await start();
      running = true;
    },
    async remove() {
      process.off("exit", stopOnExit);
      if (running) await stop("immediate").catch(() => {});
      running = false;
      rmSync(dir, { recursive: true, force: true });
    },
    log: () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : ""),
  };
}

/**
 * Creates a new, empty database on the server `serverUrl` points at; its URL. `icuLocale`
 * (e.g. "en-US", as managed PostgreSQL services default to) sets its default collation.
 */
export async function createDatabase(
  serverUrl: string,
  name = `t_${randomBytes(6).toString("hex")}`,
  options: { icuLocale?: string } = {},
): Promise<string> {
  const client = new pg.Client({ connectionString: serverUrl });
  await client.connect();
  try {
    const locale = options.icuLocale
      ? ` TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '${options.icuLocale.replace(/[^A-Za-z0-9@=_-]/g, "")}'`
      : "";
    await client.query(`CREATE DATABASE "${name}"${locale}`);
  } finally {
    await client.end();
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

function postgresIds(): { uid: number; gid: number } {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((entry) => entry.startsWith("postgres:"));
  if (!line) throw new Error("the postgres user does not exist: is Debian's postgresql package installed?");
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

/** The same database as `url` (a TCP URL of this server), reached over its unix socket. */
export function overUnixSocket(url: string, server: Pick<PostgresServer, "socketDir" | "port">): string {
  const parsed = new URL(url);
  return `postgres://${parsed.username}@/${parsed.pathname.slice(1)}?host=${encodeURIComponent(server.socketDir)}&port=${server.port}`;
}
