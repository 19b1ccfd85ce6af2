/** What `nbfleet server` and `nbfleet up` run (see server.ts for their flags). */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { VmView } from "@nbfleet/shared";
import pino from "pino";
import { CONSOLE_BUILD_COMMAND, locateConsole } from "../../api/console/locate.js";
import { toVmView } from "../../api/views.js";
import { ensureReleaseKeyFile, releaseKeyPath } from "../../artifacts/release-key.js";
import type { AdminToken } from "../../auth/admin-token.js";
import { type ControllerSettings, loadSettings } from "../../config/settings.js";
import { NbfError } from "../../errors.js";
import { providerFromSettings } from "../../providers/from-settings.js";
import { type NbfleetApp, REDACT_PATHS, buildServer, listen } from "../../server.js";
import { controllerGuestTrust } from "../../tls/files.js";
import { agentArtifact } from "../agent-artifact.js";
import { printJson, vmDetails } from "../output.js";
import { buildWhenDatabaseAnswers, checkDatabaseUrl } from "../wait-database.js";
import { spinner } from "../wait.js";
import type { ServerFlags } from "./server.js";

const DEMO = "demo";

export async function runServer(flags: ServerFlags): Promise<void> {
  const settings = settingsFrom(flags);
  const app = await start(settings, false);
  const url = await listen(app);
  const token = app.nbfleet.adminToken;
  app.log.info({ url, adminTokenFile: token.file }, "controller listening");
  announceAdminToken(token);
  await untilSignal(app);
}

/**
 * A generated admin token is printed once, but only to a terminal: under systemd stderr goes
 * to the journal, which more people read than the 0600 file. A configured one is never printed
 * (whoever configured it has it); one not taken is said so.
 */
function announceAdminToken(token: AdminToken): void {
  if (token.configuredIgnored) {
    console.error(
      "NBFLEET_ADMIN_TOKEN is not taken: it is no admin token of this controller (revoked, or other admin tokens exist); use one of those, or `nbfleet token create NAME --role admin`",
    );
  }
  if (!token.generated || !token.token) return;
  console.error(
    process.stderr.isTTY
      ? `admin token (shown once, also in ${token.file}): ${token.token}`
      : `admin token created: it is in ${token.file} (0600)`,
  );
}

export async function runUp(flags: ServerFlags, json: boolean): Promise<void> {
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
