/**
 * Renders the Linux guest bootstrap: `linux-bootstrap.sh` (the logic, a real file beside this
 * one) with the settings inserted at the top as single-quoted assignments. The local provider
 * runs it with `sh` in sandbox mode; cloud-init runs the same script in systemd mode.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { shellQuote, shellWord } from "@nbfleet/shared/quote";
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
  /** `versions/<sha256>/`: one unpacked artifact each; `current` links to the one in use. */
  versionsDir: string;
  current: string;
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
    bundle: join("current", "nbfleet-agent.mjs"),
    node: join("bin", "node"),
    launcher: join("run-agent.sh"),
    tokenFile: join("bootstrap-token"),
    passwordHashFile: join("password-hash"),
    caFile: join("controller-ca.pem"),
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

function renderLauncher(options: LinuxBootstrapOptions): string {
  const layout = linuxGuestLayout(options.installDir);
  const argv = [layout.node, ...AGENT_NODE_FLAGS, ...linuxAgentArgv(options)].map(shellWord).join(" ");
  const header = [
    "#!/bin/sh",
    "# nbfleet agent launcher, rewritten by the nbfleet bootstrap on every run; do not edit.",
    "cd /",
  ];
  if (options.mode === "systemd") return [...header, `exec ${argv}`].join("\n");
  // A sandbox has no service manager: this loop is its Restart=always. SIGINT (stop the
  // notebook too) and SIGTERM (leave it for the next agent) are passed on, and end the loop.
  return [
    ...header,
    // "PID STARTTIME": the start time (field 22 of /proc/$$/stat; the command name "sh" has no
    // spaces) lets the controller check the pid still names this launcher before it signals.
    "nbf_start=''",
    "if [ -r /proc/$$/stat ]; then read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ nbf_start _ </proc/$$/stat; fi",
    `echo "$$ $nbf_start" > ${shellWord(layout.pidFile)}`,
    "child=''",
    "stopping=0",
    `trap 'stopping=1; [ -n "$child" ] && kill -INT "$child" 2>/dev/null' INT`,
    `trap 'stopping=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' TERM`,
    "while :; do",
    `  ${argv} &`,
    "  child=$!",
    "  status=0",
    '  wait "$child" || status=$?',
    '  while kill -0 "$child" 2>/dev/null; do wait "$child" || status=$?; done',
    '  [ "$stopping" = 1 ] && exit 0',
    '  echo "nbfleet-launcher: the agent exited (status $status); starting it again in 1 s" >&2',
    "  sleep 1",
    "done",
  ].join("\n");
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
# Stopping or upgrading the agent signals the agent alone: the notebook server it supervises
# keeps running and the next agent re-adopts it.
KillMode=process
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
