/**
 * What a PostgreSQL URL points at, for messages (host:port, database, user: never the
 * password), and the checks that can fail before any connection is tried: a malformed URL, an
 * unknown `sslmode`, a TLS file that cannot be read. Those never heal by waiting, so start-up
 * stops on them at once; everything the server answers is retried.
 */
import { constants, accessSync } from "node:fs";
import { NbfError } from "../errors.js";

export interface PostgresTarget {
  /** `host:port` (or the unix socket directory), as messages name it. */
  address: string;
  database: string;
  user: string;
}

/** The modes `pg` (pg-connection-string 2.x) knows; see the README notes for what each does. */
const SSL_MODES = ["disable", "prefer", "require", "verify-ca", "verify-full", "no-verify"];
const TLS_FILES = ["sslrootcert", "sslcert", "sslkey"];
const STAND_IN = "no-host.invalid";

/** Parses and checks `url`; throws NBF_CONFIG_INVALID naming the problem (without the password). */
export function postgresTarget(url: string): PostgresTarget {
  const invalid = (problems: string) =>
    new NbfError("NBF_CONFIG_INVALID", { source: "databaseUrl", problems });
  let parsed: URL;
  // `user@/db?host=/socket/dir` has no host; pg parses it with a stand-in host, and so do we.
  let noHost = false;
  try {
    parsed = new URL(url);
  } catch {
    try {
      parsed = new URL(url.replace("@/", `@${STAND_IN}/`));
      noHost = true;
    } catch {
      throw invalid("it is not a URL; expected postgres://user@host:port/database");
    }
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw invalid(`scheme ${parsed.protocol} is not postgres: or postgresql:`);
  }
  const params = parsed.searchParams;
  const host =
    params.get("host") ??
    (decodeURIComponent(noHost ? "" : parsed.hostname).replace(/^\[(.*)\]$/, "$1") || "localhost");
  const port = params.get("port") ?? (parsed.port || "5432");
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) throw invalid(`port ${port} is not a port number`);
  const sslmode = params.get("sslmode");
  if (sslmode !== null && !SSL_MODES.includes(sslmode)) {
    throw invalid(`sslmode=${sslmode} is not one of ${SSL_MODES.join(", ")}`);
  }
  for (const name of TLS_FILES) {
    const file = params.get(name);
    if (file === null) continue;
    try {
      accessSync(file, constants.R_OK);
    } catch (error) {
      throw invalid(`${name}=${file} cannot be read (${(error as NodeJS.ErrnoException).code ?? "error"})`);
    }
  }
  const database = decodeURIComponent(parsed.pathname.slice(1)) || decodeURIComponent(parsed.username);
  return {
    address: host.startsWith("/") ? host : `${host.includes(":") ? `[${host}]` : host}:${port}`,
    database,
    user: decodeURIComponent(parsed.username) || (process.env.PGUSER ?? "(default user)"),
  };
}
