/**
 * `nbfleet server` runs the controller; `nbfleet up` (= `pnpm start`) runs it and, when the fleet
 * is empty, creates the `demo` machine, waits until its notebook serves, and prints the API URL,
 * the admin token, the notebook URL and its one-time password.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { VmView } from "@nbfleet/shared";
import { collect } from "@nbfleet/shared/cli-parse";
import type { Command } from "commander";
import pino from "pino";
import { CONSOLE_BUILD_COMMAND, locateConsole } from "../../api/console/locate.js";
import { toVmView } from "../../api/views.js";
import { ensureReleaseKeyFile, releaseKeyPath } from "../../artifacts/release-key.js";
import { type ControllerSettings, loadSettings } from "../../config/settings.js";
import { NbfError } from "../../errors.js";
import { providerFromSettings } from "../../providers/from-settings.js";
import { type NbfleetApp, REDACT_PATHS, buildServer, listen } from "../../server.js";
import { controllerGuestTrust } from "../../tls/files.js";
import { agentArtifact } from "../agent-artifact.js";
import type { GlobalOptions } from "../context.js";
import { printJson, vmDetails } from "../output.js";
import { buildWhenDatabaseAnswers, checkDatabaseUrl } from "../wait-database.js";
import { spinner } from "../wait.js";

const DEMO = "demo";

interface ServerFlags {
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
    .action(async (flags: ServerFlags) => {
      const settings = settingsFrom(flags);
      const app = await start(settings, false);
      const url = await listen(app);
      const token = app.nbfleet.adminToken;
      app.log.info({ url, adminTokenFile: token.file }, "controller listening");
      if (token.created && token.token) {
        console.error(`admin token (shown once, also in ${token.file}): ${token.token}`);
      }
      await untilSignal(app);
    });

  serverOptions(program.command("up"))
    .description("run the controller and a demo notebook machine when the fleet is empty")
    .action(async (flags: ServerFlags) => {
      const json = Boolean(globals().json);
      const settings = settingsFrom(flags);
      const app = await start(settings, true);
      const url = await listen(app);
      const token = app.nbfleet.adminToken;
      const { vms, store } = app.nbfleet;
      const existing = await store.vms.list({ limit: 1 });
      let password: string | null = null;
      if (existing.length === 0) {
        const spin = spinner(`creating the ${DEMO} notebook machine`, json);
        try {
          password = (await vms.create({ name: DEMO })).password;
          await waitServing(app, DEMO, (text) => {
            if (spin) spin.text = text;
          });
        } finally {
          spin?.stop();
        }
      }
      const demo = (await store.vms.get(DEMO)) ? view(app, DEMO) : null;
      const summary = {
        consoleUrl: `${url}/`,
        consoleBuilt: locateConsole(settings.consoleDir) !== undefined,
        apiUrl: url,
        docsUrl: `${url}/docs`,
        adminToken: token.created ? token.token : null,
        adminTokenFile: token.file,
        demo: demo ? { url: (await demo).notebook.url, password, vm: await demo } : null,
      };
      if (json) printJson(summary);
      else await printSummary(summary, demo ? await demo : null, password);
      await untilSignal(app);
    });
}

function settingsFrom(flags: ServerFlags): ControllerSettings {
  const settings = loadSettings({
    flags: {
      ...(flags.listen ? { listen: flags.listen } : {}),
      ...(flags.dataDir ? { dataDir: flags.dataDir } : {}),
      ...(flags.publicUrl ? { publicUrl: flags.publicUrl } : {}),
      ...(flags.controllerUrl ? { controllerUrls: flags.controllerUrl } : {}),
      ...(flags.databaseUrl ? { databaseUrl: passwordlessUrl(flags.databaseUrl) } : {}),
      ...(flags.replicaUrl ? { replicaUrl: flags.replicaUrl } : {}),
      ...(flags.releaseKeyFile ? { releaseKeyFile: path.resolve(flags.releaseKeyFile) } : {}),
      ...(flags.logLevel ? { logLevel: flags.logLevel as ControllerSettings["logLevel"] } : {}),
      ...(flags.provider ? { provider: flags.provider as ControllerSettings["provider"] } : {}),
      ...(flags.tlsCert ? { tlsCert: flags.tlsCert } : {}),
      ...(flags.tlsKey ? { tlsKey: flags.tlsKey } : {}),
      ...(flags.tlsCa ? { tlsCa: flags.tlsCa } : {}),
      ...acmeFlags(flags),
      ...(flags.acmeDomain ? { acmeDomain: flags.acmeDomain } : {}),
    },
    ...(flags.config ? { configFile: flags.config } : {}),
  });
  // Read once: no process started from here on (the artifact build, a guest's bootstrap)
  // inherits the admin token.
  // The database URL carries its password: not for children either.
  // biome-ignore lint/performance/noDelete: assigning undefined would set the string "undefined"
  delete process.env.NBFLEET_ADMIN_TOKEN;
  // biome-ignore lint/performance/noDelete: as above
  delete process.env.NBFLEET_DATABASE_URL;
  return settings;
}

/** Passed on as given: the settings' checks name a bad one (acme-settings.ts). */
function acmeFlags(flags: ServerFlags): Partial<ControllerSettings> {
  const as = <T>(value: string) => value as unknown as T;
  const port = flags.acmeChallengePort;
  return {
    ...(flags.acmeDirectory ? { acmeDirectory: flags.acmeDirectory } : {}),
    ...(flags.acmeEmail ? { acmeEmail: flags.acmeEmail } : {}),
    ...(flags.acmeCaFile ? { acmeCaFile: path.resolve(flags.acmeCaFile) } : {}),
    ...(flags.acmeChallenge ? { acmeChallenge: as(flags.acmeChallenge) } : {}),
    ...(port ? { acmeChallengePort: /^\d{1,5}$/.test(port) ? Number(port) : as(port) } : {}),
    ...(flags.certificateMode ? { certificateMode: as(flags.certificateMode) } : {}),
  };
}

/** A password on the command line is readable by every local user (`ps`): refused. */
function passwordlessUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new NbfError("NBF_CONFIG_INVALID", { source: "--database-url", problems: "not a URL" });
  }
  if (parsed.password) {
    throw new NbfError("NBF_CONFIG_INVALID", {
      source: "--database-url",
      problems:
        "it must not carry a password (any local user can read a command line): set NBFLEET_DATABASE_URL in the environment or an environment file, or put the password in ~/.pgpass",
    });
  }
  return url;
}

async function start(settings: ControllerSettings, quietConsole: boolean): Promise<NbfleetApp> {
  checkDatabaseUrl(settings);
  await mkdir(settings.dataDir, { recursive: true, mode: 0o700 });
  const artifact = await agentArtifact(settings.dataDir);
  // Checked against the cluster's (the database) when the services are wired.
  const releaseKey = await ensureReleaseKeyFile(releaseKeyPath(settings));
  const provider = await providerFromSettings(settings, {
    artifact,
    releasePublicKeyPem: releaseKey.publicKeyPem,
    trust: controllerGuestTrust(settings),
  });
  // `up` is for a person at a terminal: the JSON log goes to a file, the terminal gets a summary.
  // The log names machines, users and addresses: only the controller's user may read it.
  const logger = quietConsole
    ? pino(
        { level: settings.logLevel, redact: { paths: REDACT_PATHS, censor: "[redacted]" } },
        pino.destination({
          dest: path.join(settings.dataDir, "controller.log"),
          mkdir: true,
          append: true,
          mode: 0o600,
        }),
      )
    : undefined;
  return buildWhenDatabaseAnswers(
    settings,
    logger ?? pino({ level: settings.logLevel, redact: { paths: REDACT_PATHS, censor: "[redacted]" } }),
    () => buildServer(settings, { provider, artifact, ...(logger ? { logger } : {}) }),
    quietConsole ? (line) => console.error(line) : undefined,
  );
}

async function view(app: NbfleetApp, name: string): Promise<VmView> {
  const vm = await app.nbfleet.store.vms.require(name);
  return toVmView(vm, app.nbfleet.gateway.live(name));
}

async function waitServing(app: NbfleetApp, name: string, progress: (text: string) => void): Promise<void> {
  const deadline = Date.now() + 300_000;
  for (;;) {
    await app.nbfleet.store.writer.flush();
    const vm = await view(app, name);
    progress(`${name}: agent ${vm.agent.status}, notebook ${vm.notebook.state ?? "-"}, ${vm.health.status}`);
    if (
      vm.notebook.state === "running" &&
      (vm.health.status === "healthy" || vm.health.status === "degraded")
    )
      return;
    if (vm.state === "failed") throw new Error(`${name} failed: ${vm.error}`);
    if (Date.now() > deadline)
      throw new Error(`${name} did not serve within 5 minutes; see nbfleet vm show ${name}`);
    await sleep(300);
  }
}

async function printSummary(
  summary: {
    consoleUrl: string;
    consoleBuilt: boolean;
    apiUrl: string;
    docsUrl: string;
    adminToken: string | null;
    adminTokenFile: string;
  },
  demo: VmView | null,
  password: string | null,
): Promise<void> {
  // Run through a package script (`pnpm start`, `pnpm nbfleet`) in a checkout; else installed.
  const cli = process.env.npm_lifecycle_event ? "pnpm nbfleet" : "nbfleet";
  console.log(
    `nbfleet console: ${summary.consoleUrl}${summary.consoleBuilt ? "" : `  (not built: ${CONSOLE_BUILD_COMMAND})`}`,
  );
  console.log(`nbfleet controller: ${summary.apiUrl}  (API docs ${summary.docsUrl})`);
  console.log(
    summary.adminToken
      ? `admin token:        ${summary.adminToken}   (shown once; also in ${summary.adminTokenFile})`
      : `admin token:        in ${summary.adminTokenFile}`,
  );
  if (demo) {
    console.log(`\n${vmDetails(demo)}`);
    console.log(
      password
        ? `\nnotebook password:  ${password}   (shown once; only its hash is kept)`
        : `\nthe ${DEMO} password was shown when it was created; '${cli} notebook password ${DEMO}' sets a new one`,
    );
  }
  console.log(
    `\nTry: ${cli} vm ls · ${cli} vm create nb1 · ${cli} events -f   (Ctrl-C stops the controller; machines keep running)`,
  );
}

async function untilSignal(app: NbfleetApp): Promise<void> {
  await new Promise<void>((resolve) => {
    const stop = () => void app.close().then(resolve, resolve);
    process.once("SIGINT", stop);
    process.once("SIGTERM", stop);
  });
  process.exit(0);
}
