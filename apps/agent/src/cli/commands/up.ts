/**
 * `nbfleet-agent up`: the long-lived agent. In order: refuse a second agent for DIR, settle the
 * controller link, take the initial password and certificate, open the agent and its control
 * socket, start (or re-adopt) the notebook server, connect to the controller, and supervise
 * until SIGINT (stop the notebook) or SIGTERM (leave it running for the next agent).
 */
import { access, readFile } from "node:fs/promises";
import path from "node:path";
import { CAPABILITY_AGENT_UPGRADE, CAPABILITY_CONTROLLER_TRUST, COMMAND_NAMES } from "@nbfleet/shared";
import { collect, integerIn } from "@nbfleet/shared/cli-parse";
import type { Command } from "commander";
import { Agent } from "../../agent.js";
import { loadSettings } from "../../config/load.js";
import { type DataPaths, dataPaths } from "../../config/paths.js";
import { type AgentSettings, controllerUrlsOf } from "../../config/settings.js";
import { isAgentRunning } from "../../control/client.js";
import { serveControlSocket } from "../../control/server.js";
import { AgentError } from "../../errors.js";
import { readCredential } from "../../link/credential.js";
import type { TlsTrust } from "../../link/dial.js";
import { type LinkStatus, runLink, timingFromSettings } from "../../link/link.js";
import { stderrLinkLog, teeLinkLog } from "../../link/log.js";
import { PinnedKey } from "../../link/pinned-key.js";
import { type LinkFlags, type LinkSetup, setupLink } from "../../link/setup.js";
import { readHashFile } from "../../password/hash-file.js";
import { validateHash } from "../../password/hash.js";
import { readPassword } from "../../password/stdin.js";
import { AgentStreams } from "../../streams/agent-streams.js";
import { installCertificate } from "../../tls/ensure.js";
import { formatFingerprint } from "../../tls/fingerprint.js";
import type { ArtifactSource } from "../../upgrade/download.js";
import { UpgradeFollowUp } from "../../upgrade/follow-up.js";
import { UPGRADE_EXIT_CODE, Upgrader } from "../../upgrade/upgrader.js";
import { readGivenFile } from "../../util/read-given-file.js";
import { agentVersion } from "../../version.js";
import { type CertificateFlags, certificateFromFlags, withCertificateFlags } from "../certificate-flags.js";
import { withDataDir } from "../context.js";

interface UpFlags extends LinkFlags, CertificateFlags {
  dataDir: string;
  port?: number;
  ip?: string;
  notebookDir?: string;
  baseUrl?: string;
  runAs?: string;
  allowRoot?: boolean;
  hostname?: string[];
  certIp?: string[];
  publicUrl?: string;
  passwordStdin?: boolean;
  passwordHashFile?: string;
  passwordHash?: string;
  certFile?: string;
  keyFile?: string;
  installDir?: string;
  releaseKeyFile?: string;
  systemdScope?: boolean;
  json?: boolean;
}

type StartedHow = Awaited<ReturnType<Agent["up"]>>;

export function registerUp(program: Command): void {
  const command = withDataDir(program.command("up"))
    .description(
      "install what is missing, write the nbserver profile, start and supervise the notebook server",
    )
    .option("--port <port>", "private notebook port (default 9999)", integerIn("--port", 1, 65535))
    .option("--ip <addr>", "address the notebook binds (default 0.0.0.0)")
    .option("--notebook-dir <dir>", "directory the notebook serves (default DIR/notebooks)")
    .option("--base-url <path>", "URL prefix, starting with / (default /)")
    .option(
      "--run-as <user>",
      "unprivileged user the server runs as when the agent is root (default nbfleet)",
    )
    .option("--allow-root", "let the notebook run as root (explicit opt-out)")
    .option(
      "--hostname <name>",
      "extra DNS name for the certificate and the printed URL (repeatable)",
      collect,
    )
    .option("--cert-ip <addr>", "extra IP address for the certificate (repeatable)", collect)
    .option(
      "--public-url <url>",
      "the URL people reach the notebook at, when not its own address (e.g. https://<fqdn>/ behind a 443 redirect)",
    )
    .option("--password-stdin", "read the notebook password from the first line of stdin")
    .option(
      "--password-hash-file <file>",
      "file (mode 0600) holding the initial password as a ready Jupyter hash; applied only when DIR has no password yet",
    )
    .option(
      "--password-hash <hash>",
      "the initial password as a ready Jupyter hash (argon2:… or sha1:…); applied only when DIR has no password yet (prefer --password-hash-file: a command line is visible to every local user)",
    )
    .option(
      "--cert-file <file>",
      "an operator-provided certificate (with --key-file); installed only when DIR has no certificate yet",
    )
    .option("--key-file <file>", "the private key of --cert-file")
    .option(
      "--controller <url>",
      "the controller to connect to (https://… or wss://…; http:// only for a local one); repeat it for replicas, tried in turn; remembered in DIR (env NBFLEET_CONTROLLER_URL, or NBFLEET_CONTROLLER_URLS comma-separated)",
      collect,
    )
    .option(
      "--bootstrap-token-file <file>",
      "file holding the one-time bootstrap token, exchanged for a credential kept in DIR/state (env NBFLEET_BOOTSTRAP_TOKEN)",
    )
    .option("--controller-ca <file>", "trust only this CA (PEM) for the controller's certificate; remembered")
    .option(
      "--controller-fingerprint <sha256>",
      "pin the controller's certificate by its SHA-256 fingerprint; remembered",
    )
    .option(
      "--install-dir <dir>",
      "the agent's install directory (versions/, current, previous; laid out by the bootstrap): with --release-key-file it lets the controller upgrade this agent",
    )
    .option(
      "--release-key-file <file>",
      "the controller's release public key (Ed25519 PEM): an upgrade artifact it did not sign is refused",
    )
    .option(
      "--systemd-scope",
      "start the notebook server in a systemd scope of its own (systemd-run --scope), so restarting the agent's unit never stops it",
    )
    .option("--json", "print the start-up summary as one JSON line");
  withCertificateFlags(command).action(up);
}

async function up(opts: UpFlags): Promise<void> {
  const paths = dataPaths(opts.dataDir);
  if (await isAgentRunning(paths.controlSocket)) {
    throw new AgentError("NBF_AGENT_ALREADY_RUNNING", `an agent already runs for ${opts.dataDir}`);
  }
  const link = await prepareLink(paths, opts);
  if ((opts.installDir === undefined) !== (opts.releaseKeyFile === undefined)) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      "--install-dir and --release-key-file go together (an agent upgrades itself only with both)",
    );
  }
  const certificate = await certificateFromFlags(opts, (await loadSettings(paths)).certificate);
  const agent = await Agent.open({
    dataDir: opts.dataDir,
    overrides: { ...settingsFromFlags(opts), link: link.settings, ...(certificate ? { certificate } : {}) },
    ...(opts.systemdScope ? { notebookScope: "systemd" as const } : {}),
    ...(await initialPassword(opts)),
  });
  await installInitialCertificate(agent, opts);
  const server = await serveControlSocket(agent.paths.controlSocket, agent, agent.events);
  let how: StartedHow;
  try {
    how = await agent.up((message) => !opts.json && console.error(`… ${message}`));
  } catch (error) {
    server.close();
    agent.close();
    throw error;
  }
  printSummary(agent, how, opts.json);
  agent.subscribe({
    onState: () => {},
    onEvent: (event) =>
      console.error(`${event.at} ${event.level} ${event.kind}: ${event.message.split("\n")[0]}`),
  });
  const pinnedKey = await loadPinnedKey(agent);
  const upgrades = prepareUpgrades(agent, opts, pinnedKey);
  const stopLink = new AbortController();
  const linkDone = connectToController(agent, link.bootstrapToken, stopLink.signal, upgrades, pinnedKey);
  const exitCode = await new Promise<number>((resolve) => {
    let finishing = false;
    const finish = async (stopNotebook: boolean, code = 0) => {
      if (finishing) return;
      finishing = true;
      stopLink.abort();
      await linkDone;
      server.close();
      if (stopNotebook) await agent.shutdown();
      else agent.close();
      resolve(code);
    };
    process.once("SIGINT", () => void finish(true));
    process.once("SIGTERM", () => void finish(false));
    // Switched to another version: the answer goes out first, then the agent ends as on SIGTERM
    // (the notebook server keeps running) and its launcher starts the new version at once.
    void upgrades?.upgrader.switched.then(async () => {
      await new Promise((done) => setTimeout(done, ANSWER_GRACE_MS));
      await finish(false, UPGRADE_EXIT_CODE);
    });
  });
  if (exitCode !== 0) process.exit(exitCode);
}

/** How long a switched agent waits for its answer to leave before it ends. */
const ANSWER_GRACE_MS = 300;

interface Upgrades {
  upgrader: Upgrader;
  followUp: UpgradeFollowUp;
  /** The controller the link is connected to now (the one an artifact is downloaded from). */
  connectedTo: string | null;
}

/**
 * With a pinned controller certificate: its key as learned so far, and the certificates a
 * `controller.trust` put in its place (link/pinned-key.ts); the agent then takes controller.trust.
 */
async function loadPinnedKey(agent: Agent): Promise<PinnedKey | undefined> {
  const { fingerprintSha256 } = agent.settings.link;
  if (!fingerprintSha256) return undefined;
  const { pinnedKey, problem } = await PinnedKey.load(
    agent.paths.controllerKey,
    fingerprintSha256,
    (error) => agent.log.warn({ err: error }, "recording the pinned controller certificate's key failed"),
    agent.paths.controllerTrust,
  );
  if (problem) agent.log.warn(`${problem}; ignored (the key record is written again at the next connection)`);
  agent.useControllerTrust(pinnedKey);
  return pinnedKey;
}

function prepareUpgrades(agent: Agent, opts: UpFlags, pinnedKey: PinnedKey | undefined): Upgrades | null {
  if (opts.installDir === undefined || opts.releaseKeyFile === undefined) return null;
  const installDir = path.resolve(opts.installDir);
  const version = agentVersion();
  const upgrades: Upgrades = {
    connectedTo: null,
    upgrader: new Upgrader({
      installDir,
      releaseKeyFile: path.resolve(opts.releaseKeyFile),
      currentVersion: version,
      source: () => artifactSource(agent, upgrades.connectedTo, pinnedKey),
    }),
    followUp: null as unknown as UpgradeFollowUp,
  };
  upgrades.followUp = new UpgradeFollowUp({
    layout: upgrades.upgrader.layout,
    version,
    state: () => agent.state(),
    record: (level, kind, message, data) => agent.recordEvent(level, kind, message, data),
    onError: (error) => agent.log.warn({ err: error }, "upgrade follow-up failed; tried again later"),
  });
  agent.useUpgrader(upgrades.upgrader);
  agent.subscribe({ onState: () => void upgrades.followUp.stateChanged(), onEvent: () => {} });
  return upgrades;
}

/** Where to download from: the connected controller, with the link's trust. */
async function artifactSource(
  agent: Agent,
  url: string | null,
  pinnedKey: PinnedKey | undefined,
): Promise<ArtifactSource | null> {
  if (url === null) return null;
  const { caFile, fingerprintSha256 } = agent.settings.link;
  if (!/^(wss|https):/.test(url)) return { url, trust: null };
  const trust: TlsTrust = {
    ...(caFile ? { ca: await readGivenFile(caFile, "controller CA file") } : {}),
    ...(fingerprintSha256
      ? { fingerprintSha256: formatFingerprint(fingerprintSha256), ...(pinnedKey ? { key: pinnedKey } : {}) }
      : {}),
  };
  return { url, trust };
}

/** The link settings from the flags and DIR; a controller without a credential needs a bootstrap token. */
async function prepareLink(paths: DataPaths, opts: UpFlags): Promise<LinkSetup> {
  const link = await setupLink(paths, (await loadSettings(paths)).link, opts);
  if (
    link.settings.controllerUrl &&
    !link.bootstrapToken &&
    !(await readCredential(paths.controllerCredential))
  ) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      `no controller credential at ${paths.controllerCredential}; give the one-time bootstrap token with --bootstrap-token-file or NBFLEET_BOOTSTRAP_TOKEN`,
    );
  }
  return link;
}

function settingsFromFlags(opts: UpFlags): Partial<AgentSettings> {
  const out: Partial<AgentSettings> = {};
  if (opts.port !== undefined) out.port = opts.port;
  if (opts.ip !== undefined) out.ip = opts.ip;
  if (opts.notebookDir !== undefined) out.notebookDir = opts.notebookDir;
  if (opts.baseUrl !== undefined) out.baseUrl = opts.baseUrl;
  if (opts.runAs !== undefined) out.runAs = opts.runAs;
  if (opts.allowRoot) out.allowRoot = true;
  if (opts.hostname) out.hostnames = opts.hostname;
  if (opts.certIp) out.ips = opts.certIp;
  if (opts.publicUrl !== undefined) out.publicUrl = opts.publicUrl;
  return out;
}

/** The initial password (plain from stdin, or a ready hash); the agent applies it only when DIR has none. */
async function initialPassword(opts: UpFlags): Promise<{ password?: string; passwordHash?: string }> {
  if (opts.passwordHash && opts.passwordHashFile) {
    throw new AgentError("NBF_INVALID_INPUT", "give at most one of --password-hash and --password-hash-file");
  }
  const password = opts.passwordStdin ? await readPassword(process.stdin) : undefined;
  const passwordHash = opts.passwordHashFile ? await readHashFile(opts.passwordHashFile) : opts.passwordHash;
  if (passwordHash) validateHash(passwordHash);
  return {
    ...(password !== undefined ? { password } : {}),
    ...(passwordHash ? { passwordHash } : {}),
  };
}

async function installInitialCertificate(agent: Agent, opts: UpFlags): Promise<void> {
  if (!opts.certFile && !opts.keyFile) return;
  if (!opts.certFile || !opts.keyFile) {
    throw new AgentError("NBF_INVALID_INPUT", "--cert-file and --key-file go together");
  }
  // Like the initial password: a launcher repeats its flags on every start, and a
  // certificate installed or rotated since must survive that.
  if (await exists(agent.paths.certFile)) {
    console.error(
      `nbfleet-agent: --cert-file not installed: ${agent.paths.certFile} already exists (replace it with \`certificate install\`)`,
    );
    return;
  }
  await installCertificate(
    agent.paths,
    await readFile(opts.certFile, "utf8"),
    await readFile(opts.keyFile, "utf8"),
  );
}

function printSummary(agent: Agent, how: StartedHow, json: boolean | undefined): void {
  const state = agent.state();
  const summary = {
    how,
    url: state.notebook.url,
    pid: state.notebook.pid,
    fingerprintSha256: state.notebook.certificate?.fingerprintSha256 ?? null,
    health: state.health.status,
    dataDir: agent.paths.dataDir,
    controller: agent.settings.link.controllerUrl,
    controllers: controllerUrlsOf(agent.settings.link),
  };
  if (json) {
    console.log(JSON.stringify(summary));
    return;
  }
  console.log(`notebook server ${how === "adopted" ? "re-adopted" : "started"} (pid ${summary.pid})`);
  console.log(`  URL:         ${summary.url}`);
  console.log(`  Certificate: SHA-256 ${summary.fingerprintSha256}`);
  console.log(`  Health:      ${summary.health}`);
  if (summary.controllers.length > 0) console.log(`  Controller:  ${summary.controllers.join(", ")}`);
  console.log("Supervising. Ctrl-C stops the notebook server; SIGTERM leaves it running for the next agent.");
}

/** Runs the controller link until `signal` aborts; resolves at once for a standalone agent. */
function connectToController(
  agent: Agent,
  bootstrapToken: string | undefined,
  signal: AbortSignal,
  upgrades: Upgrades | null,
  pinnedKey: PinnedKey | undefined,
): Promise<void> {
  const settings = agent.settings.link;
  const urls = controllerUrlsOf(settings);
  if (urls.length === 0) return Promise.resolve();
  const streams = new AgentStreams({
    target: () => agent.terminalTarget(),
    logFile: (source) => (source === "agent" ? agent.paths.agentLog : agent.paths.notebookLog),
    redact: (line) => agent.redactLog(line),
  });
  // `agent.upgrade` is offered only by an agent that can install another version, and
  // `controller.trust` only by one pinned to its controller's certificate.
  const capabilities = [
    ...COMMAND_NAMES.filter((name) => name !== "agent.upgrade" && name !== "controller.trust"),
    ...streams.capabilities,
    ...(upgrades ? [CAPABILITY_AGENT_UPGRADE] : []),
    ...(pinnedKey ? [CAPABILITY_CONTROLLER_TRUST] : []),
  ];
  return runLink({
    url: urls,
    credentialFile: agent.paths.controllerCredential,
    ...(bootstrapToken ? { bootstrapToken } : {}),
    tls: {
      ...(settings.caFile ? { caFile: settings.caFile } : {}),
      ...(settings.fingerprintSha256 ? { fingerprintSha256: settings.fingerprintSha256 } : {}),
      ...(pinnedKey ? { pinnedKey } : {}),
    },
    core: agent,
    streams,
    capabilities,
    log: teeLinkLog(stderrLinkLog(), agent.log.child({ module: "link" })),
    signal,
    timing: timingFromSettings(settings),
    ...(upgrades ? { onStatus: (status: LinkStatus) => followLink(upgrades, status) } : {}),
  }).catch((error) => console.error(`nbfleet-agent: controller link stopped: ${(error as Error).message}`));
}

function exists(file: string): Promise<boolean> {
  return access(file).then(
    () => true,
    () => false,
  );
}

function followLink(upgrades: Upgrades, status: LinkStatus): void {
  if (status.state === "connected") {
    upgrades.connectedTo = status.url;
    void upgrades.followUp.linkConnected();
  } else {
    upgrades.connectedTo = null;
    upgrades.followUp.linkLost();
  }
}
