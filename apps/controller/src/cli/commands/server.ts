/**
 * `nbfleet server` runs the controller; `nbfleet up` (= `pnpm start`) runs it and, when the fleet
 * is empty, creates the `demo` machine, waits until its notebook serves, and prints the API URL,
 * the admin token, the notebook URL and its one-time password. The flags live here; what they
 * run (the whole controller) is in server-run.ts, loaded only by these two commands.
 */
import { collect } from "@nbfleet/shared/cli-parse";
import type { Command } from "commander";
import type { GlobalOptions } from "../context.js";

export interface ServerFlags {
  listen?: string;
  dataDir?: string;
  publicUrl?: string;
  controllerUrl?: string[];
  databaseUrl?: string;
  replicaUrl?: string;
  releaseKeyFile?: string;
  config?: string;
  logLevel?: string;
  provider?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  acmeDirectory?: string;
  acmeEmail?: string;
  acmeCaFile?: string;
  acmeChallenge?: string;
  acmeChallengePort?: string;
  certificateMode?: string;
  acmeDomain?: string;
}

export function registerServer(program: Command, globals: () => GlobalOptions): void {
  const serverOptions = (cmd: Command) =>
    cmd
      .option("--listen <host:port>", "address to listen on (default $NBFLEET_LISTEN or 127.0.0.1:7070)")
      .option("--data-dir <dir>", "state, sandboxes and logs (default $NBFLEET_DATA_DIR or ~/.nbfleet)")
      .option("--public-url <url>", "the URL agents dial (default: the listening address)")
      .option(
        "--controller-url <url>",
        "a URL new agents dial; repeat it for several, tried in turn (default: --public-url; $NBFLEET_CONTROLLER_URLS comma-separated)",
        collect,
      )
      .option(
        "--database-url <url>",
        "PostgreSQL instead of the embedded SQLite, without its password (~/.pgpass or $NBFLEET_DATABASE_URL)",
      )
      .option(
        "--replica-url <url>",
        "where the other replicas reach this one (default: the listening address)",
      )
      .option(
        "--release-key-file <file>",
        "the release key signing agent artifacts, made 0600 when missing; every replica needs a copy of the same file (default <data-dir>/release-key.pem; $NBFLEET_RELEASE_KEY_FILE)",
      )
      .option("--config <file>", "a JSON settings file (default <data-dir>/config.json when present)")
      .option("--log-level <level>", "fatal, error, warn, info, debug or trace")
      .option("--provider <name>", "where machines run: local (default) or azure ($NBFLEET_PROVIDER)")
      .option(
        "--tls-cert <file>",
        "serve HTTPS with this PEM certificate (chain); guests verify it ($NBFLEET_TLS_CERT)",
      )
      .option("--tls-key <file>", "the PEM private key of --tls-cert ($NBFLEET_TLS_KEY)")
      .option(
        "--tls-ca <file>",
        "the CA guests trust for --tls-cert; default: they pin its SHA-256 ($NBFLEET_TLS_CA)",
      )
      .option(
        "--acme-directory <url>",
        "the ACME directory notebook machines get certificates from (default Let's Encrypt; $NBFLEET_ACME_DIRECTORY)",
      )
      .option("--acme-email <address>", "the ACME account's contact ($NBFLEET_ACME_EMAIL)")
      .option(
        "--acme-ca-file <file>",
        "a PEM CA trusted for the ACME server's own TLS, sent to the machines ($NBFLEET_ACME_CA_FILE)",
      )
      .option("--acme-challenge <type>", "http-01 (default) or tls-alpn-01 ($NBFLEET_ACME_CHALLENGE)")
      .option(
        "--acme-challenge-port <port>",
        "where agents answer the challenge (default 80 for http-01, 443 for tls-alpn-01; $NBFLEET_ACME_CHALLENGE_PORT)",
      )
      .option(
        "--certificate-mode <mode>",
        "new machines' certificate when not asked: self-signed (default) or acme where a public name is known ($NBFLEET_CERTIFICATE_MODE)",
      )
      .option(
        "--acme-domain <name>",
        "serve HTTPS with a certificate for this DNS name from the ACME CA ($NBFLEET_ACME_DIRECTORY), answered over TLS-ALPN-01 on the listening port and renewed by itself; guests trust the CA (--tls-ca, else the system's) ($NBFLEET_ACME_DOMAIN)",
      );

  serverOptions(program.command("server"))
    .description("run the controller in the foreground (JSON logs on stdout)")
    // The controller's code loads only here: client commands start without it.
    .action(async (flags: ServerFlags) => (await import("./server-run.js")).runServer(flags));

  serverOptions(program.command("up"))
    .description("run the controller and a demo notebook machine when the fleet is empty")
    .action(async (flags: ServerFlags) =>
      (await import("./server-run.js")).runUp(flags, Boolean(globals().json)),
    );
}
