/**
 * Renders the Linux guest bootstrap: `linux-bootstrap.sh` (the logic, a real file beside this
 * one) with the settings inserted at the top as single-quoted assignments. The local provider
 * runs it with `sh` in sandbox mode; cloud-init runs the same script in systemd mode.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { shellQuote, shellWord } from "@nbfleet/shared/quote";
import { acmeArgv } from "./acme-argv.js";
import { renderLauncherScript } from "./launcher.js";
import { type LinuxBootstrapOptions, agentControllerUrls, checkLinuxOptions } from "./options.js";

export const DEFAULT_NODE_DIST_URL = "https://nodejs.org/dist/latest-v20.x";

/**
 * Node flags the agent runs with (their effect is measured by `pnpm bench --only agent`): a 1 MB
 * young generation instead of 16 MB, since it allocates little; and V8's lite mode (no
 * optimizing compiler), which keeps the optimizer's code and its compiled output out of memory;
 * the agent mostly waits on I/O.
 */
export const AGENT_NODE_FLAGS = ["--max-semi-space-size=1", "--lite-mode"];
const SETTINGS_MARKER = "# nbfleet:settings";

/**
 * The only variables a sandbox agent (and so its notebook) inherits from whoever ran the
 * bootstrap: locale, home, search path and proxies. Nothing else — in particular no token of
 * the controller's — reaches a guest process's environment. (systemd starts services with an
 * environment of its own.)
 */
export const AGENT_ENVIRONMENT = [
  ...["PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR"],
  ...["http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"],
];

/** The environment to run the bootstrap with: `AGENT_ENVIRONMENT`'s variables of `env`, nothing else. */
export function agentEnvironment(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return Object.fromEntries(
    AGENT_ENVIRONMENT.flatMap((name) => (env[name] !== undefined ? [[name, env[name]]] : [])),
  );
}

/** Where the bootstrap puts things inside `installDir` on a Linux guest. */
export interface LinuxGuestLayout {
  installDir: string;
  /**
   * `versions/<version>/` (or `<sha256>/` when the bootstrap was given no version): one unpacked
   * artifact each; `current` links to the one in use, `previous` to the one before it.
   */
  versionsDir: string;
  current: string;
  previous: string;
  /** The controller's release public key (0644): the agent checks upgrade artifacts with it. */
  releaseKeyFile: string;
  /** An upgrade the new agent has not confirmed yet (written by the agent, read by the launcher). */
  upgradeFile: string;
  /** The launcher switched back; the agent reports it and removes the file. */
  rollbackFile: string;
  bundle: string;
  /** A link to the Node.js the agent runs with. */
  node: string;
  /** `sh run-agent.sh` execs the agent with its arguments (what the service and sandbox start). */
  launcher: string;
  /** The one-time bootstrap token, mode 0600. */
  tokenFile: string;
  /** The initial notebook password hash, mode 0600 (the agent applies it at its first start only). */
  passwordHashFile: string;
  /** The controller's CA (PEM) when one was given. */
  caFile: string;
  /** The CA (PEM) trusted for the ACME server's own TLS, when one was given (0644). */
  acmeCaFile: string;
  /** Sandbox mode: the detached agent's pid. */
  pidFile: string;
  /**
   * Sandbox mode: the agent's stdout and stderr (start-up lines, a crash's stack trace); the
   * previous start's is kept as `agent-console.log.1`. The agent's own log is
   * `dataPaths(dataDir).agentLog`; under systemd the console goes to the journal.
   */
  consoleLog: string;
}

export function linuxGuestLayout(installDir: string): LinuxGuestLayout {
  const join = (...parts: string[]) => path.posix.join(installDir, ...parts);
  return {
    installDir,
    versionsDir: join("versions"),
    current: join("current"),
    previous: join("previous"),
    releaseKeyFile: join("release-key.pub"),
    upgradeFile: join("upgrade.json"),
    rollbackFile: join("rollback.json"),
    bundle: join("current", "nbfleet-agent.mjs"),
    node: join("bin", "node"),
    launcher: join("run-agent.sh"),
    tokenFile: join("bootstrap-token"),
    passwordHashFile: join("password-hash"),
    caFile: join("controller-ca.pem"),
    acmeCaFile: join("acme-ca.pem"),
    pidFile: join("agent.pid"),
    consoleLog: join("agent-console.log"),
  };
}

/** The agent's arguments after `node`: the bundle, then `up …` (or `agentArgs` when given). */
export function linuxAgentArgv(options: LinuxBootstrapOptions): string[] {
  const layout = linuxGuestLayout(options.installDir);
  if (options.agentArgs) return [layout.bundle, ...options.agentArgs];
  return [
    layout.bundle,
    "up",
    "--data-dir",
    options.dataDir,
    "--port",
    String(options.notebookPort),
    "--ip",
    options.bindIp,
    ...agentControllerUrls(options).flatMap((url) => ["--controller", url]),
    "--bootstrap-token-file",
    layout.tokenFile,
    ...(options.controllerCaPem !== undefined ? ["--controller-ca", layout.caFile] : []),
    ...(options.controllerFingerprint !== undefined
      ? ["--controller-fingerprint", options.controllerFingerprint]
      : []),
    // A file, never the hash itself: a command line is readable by every local user.
    ...(options.passwordHash !== undefined ? ["--password-hash-file", layout.passwordHashFile] : []),
    ...(options.allowRoot ? ["--allow-root"] : []),
    ...(options.runAs ? ["--run-as", options.runAs] : []),
    ...(options.hostnames ?? []).flatMap((name) => ["--hostname", name]),
    ...(options.publicUrl !== undefined ? ["--public-url", options.publicUrl] : []),
    ...acmeArgv(options.certificate, layout.acmeCaFile),
    // With the release key the agent can be upgraded in place (versions/, current, previous).
    ...(options.releasePublicKeyPem !== undefined
      ? ["--install-dir", layout.installDir, "--release-key-file", layout.releaseKeyFile]
      : []),
    ...(options.mode === "systemd" ? ["--systemd-scope"] : []),
  ];
}

/** The POSIX `sh` bootstrap for these settings (checked first: a bad value throws, naming it). */
export function renderLinuxBootstrap(input: LinuxBootstrapOptions): string {
  const options = checkLinuxOptions(input);
  const layout = linuxGuestLayout(options.installDir);
  const unitDir = options.systemdUnitDir ?? "/etc/systemd/system";
  const systemd = options.mode === "systemd";
  const publicPort = systemd && options.publicPort !== undefined ? String(options.publicPort) : "";

  const settings: Array<[string, string]> = [
    ["NBF_MODE", options.mode],
    ["NBF_CONTROLLER_URL", options.controllerUrl],
    ["NBF_CONTROLLER_URLS", agentControllerUrls(options).join(", ")],
    ["NBF_ARTIFACT_URL", options.artifactUrl],
    ["NBF_ARTIFACT_SHA256", options.artifactSha256],
    ["NBF_ARTIFACT_VERSION", options.artifactVersion ?? ""],
    ["NBF_RELEASE_KEY_PEM", options.releasePublicKeyPem?.trimEnd() ?? ""],
    ["NBF_BOOTSTRAP_TOKEN", options.bootstrapToken],
    ["NBF_PASSWORD_HASH", options.passwordHash ?? ""],
    ["NBF_DATA_DIR", options.dataDir],
    ["NBF_INSTALL_DIR", options.installDir],
    ["NBF_CONSOLE_LOG", layout.consoleLog],
    ["NBF_NOTEBOOK_PORT", String(options.notebookPort)],
    ["NBF_BIND_IP", options.bindIp],
    ["NBF_RUN_AS", options.runAs ?? ""],
    ["NBF_ALLOW_ROOT", options.allowRoot ? "1" : "0"],
    ["NBF_CONTROLLER_CA_PEM", options.controllerCaPem?.trimEnd() ?? ""],
    ["NBF_CONTROLLER_FINGERPRINT", options.controllerFingerprint ?? ""],
    ["NBF_CONTROLLER_CERT_PEM", options.controllerCertPem?.trimEnd() ?? ""],
    ["NBF_ACME_CA_PEM", options.certificate?.caPem?.trimEnd() ?? ""],
    ["NBF_PUBLIC_PORT", publicPort],
    ["NBF_NODE", options.node ?? "node"],
    ["NBF_INSTALL_NODE", (options.installNode ?? systemd) ? "1" : "0"],
    ["NBF_NODE_DIST_URL", options.nodeDistUrl === null ? "" : (options.nodeDistUrl ?? DEFAULT_NODE_DIST_URL)],
    ["NBF_SYSTEMD_UNIT_DIR", unitDir],
    ["NBF_AGENT_ENV_NAMES", AGENT_ENVIRONMENT.join(" ")],
    ["NBF_LAUNCHER", renderLauncher(options)],
    ["NBF_AGENT_UNIT", systemd ? renderAgentUnit(layout) : ""],
    ["NBF_NFT_RULES", publicPort ? renderNftRules(Number(publicPort), options.notebookPort) : ""],
    [
      "NBF_REDIRECT_UNIT",
      publicPort ? renderRedirectUnit(layout, Number(publicPort), options.notebookPort) : "",
    ],
  ];
  const block = settings.map(([name, value]) => `${name}=${shellQuote(value)}`).join("\n");
  const template = bootstrapTemplate();
  if (!template.includes(SETTINGS_MARKER))
    throw new Error(`linux-bootstrap.sh lost its ${SETTINGS_MARKER} line`);
  return template.replace(SETTINGS_MARKER, () => block);
}

/** `run-agent.sh`: the agent's loop and upgrade watchdog (launcher.ts), in both modes. */
export function renderLauncher(options: LinuxBootstrapOptions): string {
  const layout = linuxGuestLayout(options.installDir);
  return renderLauncherScript({
    installDir: layout.installDir,
    argv: [layout.node, ...AGENT_NODE_FLAGS, ...linuxAgentArgv(options)],
    ...(options.mode === "sandbox" ? { pidFile: layout.pidFile } : {}),
  });
}

// Paths here passed checkLinuxOptions' systemd-safe character set, so they need no unit quoting.
function renderAgentUnit(layout: LinuxGuestLayout): string {
  return `[Unit]
Description=nbfleet agent: supervises the Jupyter notebook server and reports to the controller
Wants=network-online.target
After=network-online.target

[Service]
Type=simple
ExecStart=/bin/sh ${layout.launcher}
Restart=always
RestartSec=5
# The launcher (the main process) passes SIGTERM on to the agent, which ends leaving the notebook
# server running; whatever else is left in this unit is killed after the timeout. The notebook
# server is not in this unit: the agent starts it in a scope of its own (systemd-run --scope,
# nbfleet-notebook-*.scope), so restarting or stopping this service never kills it.
KillMode=mixed
TimeoutStopSec=30
# Console output goes to the journal; the agent's own log is DIR/logs/agent.log.

[Install]
WantedBy=multi-user.target`;
}

function renderNftRules(publicPort: number, notebookPort: number): string {
  return `#!/usr/sbin/nft -f
# nbfleet: the public port reaches the notebook's private port. Written by the bootstrap; do not edit.
# prerouting: connections from outside; output: connections from the machine itself to one of its
# own addresses (only those: outbound HTTPS to other hosts must stay untouched).
# Declaring then deleting the table makes reloading this file idempotent.
table inet nbfleet_redirect
delete table inet nbfleet_redirect
table inet nbfleet_redirect {
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    tcp dport ${publicPort} redirect to :${notebookPort}
  }
  chain output {
    type nat hook output priority -100; policy accept;
    fib daddr type local tcp dport ${publicPort} redirect to :${notebookPort}
  }
}`;
}

function renderRedirectUnit(layout: LinuxGuestLayout, publicPort: number, notebookPort: number): string {
  return `[Unit]
Description=nbfleet: redirect public port ${publicPort} to the notebook port ${notebookPort}
After=network-pre.target nftables.service
Before=nbfleet-agent.service

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=nft -f ${path.posix.join(layout.installDir, "port-redirect.nft")}
ExecStop=nft delete table inet nbfleet_redirect

[Install]
WantedBy=multi-user.target`;
}

let template: string | undefined;
function bootstrapTemplate(): string {
  template ??= readFileSync(new URL("./linux-bootstrap.sh", import.meta.url), "utf8");
  return template;
}
