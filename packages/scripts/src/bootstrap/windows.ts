/**
 * Renders the Windows Server bootstrap: `windows-bootstrap.ps1` (the logic, a real file beside
 * this one) with the settings inserted as PowerShell single-quoted assignments. Azure runs it
 * through a CustomScriptExtension. It has not been run on a real Windows machine; its tests
 * check what it contains.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { ValidationError } from "@nbfleet/shared";
import { powershellQuote } from "@nbfleet/shared/quote";
import { acmeArgv } from "./acme-argv.js";
import { type WindowsBootstrapOptions, agentControllerUrls, checkWindowsOptions } from "./options.js";
import { renderWindowsLauncher } from "./windows-launcher.js";

export const WINDOWS_DEFAULTS = {
  dataDir: "C:\\ProgramData\\nbfleet\\agent",
  installDir: "C:\\ProgramData\\nbfleet\\install",
  pythonVersion: "3.12.10",
  nodeDistUrl: "https://nodejs.org/dist/latest-v20.x",
} as const;
const SETTINGS_MARKER = "# nbfleet:settings";
/** Replaced on the guest by the path of the Node.js the bootstrap found or installed. */
const NODE_PLACEHOLDER = "@NODE@";

/** The agent's arguments after `node`, for a Windows guest. */
export function windowsAgentArgv(options: WindowsBootstrapOptions): string[] {
  const dataDir = options.dataDir ?? WINDOWS_DEFAULTS.dataDir;
  const installDir = options.installDir ?? WINDOWS_DEFAULTS.installDir;
  // `current` is a junction to versions\<version> (or <sha256>): the launcher starts whatever it points at.
  const bundle = path.win32.join(installDir, "current", "nbfleet-agent.mjs");
  if (options.agentArgs) return [bundle, ...options.agentArgs];
  return [
    bundle,
    ...["up", "--data-dir", dataDir, "--port", String(options.notebookPort), "--ip", options.bindIp],
    ...agentControllerUrls(options).flatMap((url) => ["--controller", url]),
    ...["--bootstrap-token-file", path.win32.join(installDir, "bootstrap-token")],
    ...(options.controllerCaPem !== undefined
      ? ["--controller-ca", path.win32.join(installDir, "controller-ca.pem")]
      : []),
    ...(options.controllerFingerprint !== undefined
      ? ["--controller-fingerprint", options.controllerFingerprint]
      : []),
    // A file readable by SYSTEM and Administrators only, never the hash itself on a command line.
    ...(options.passwordHash !== undefined
      ? ["--password-hash-file", path.win32.join(installDir, "password-hash")]
      : []),
    ...(options.allowRoot ? ["--allow-root"] : []),
    ...(options.hostnames ?? []).flatMap((name) => ["--hostname", name]),
    ...(options.publicUrl !== undefined ? ["--public-url", options.publicUrl] : []),
    ...acmeArgv(options.certificate, path.win32.join(installDir, "acme-ca.pem")),
    ...(options.releasePublicKeyPem !== undefined
      ? ["--install-dir", installDir, "--release-key-file", path.win32.join(installDir, "release-key.pub")]
      : []),
  ];
}

/** The PowerShell bootstrap for these settings (checked first: a bad value throws, naming it). */
export function renderWindowsBootstrap(input: WindowsBootstrapOptions): string {
  const options = checkWindowsOptions(input);
  const dataDir = options.dataDir ?? WINDOWS_DEFAULTS.dataDir;
  const installDir = options.installDir ?? WINDOWS_DEFAULTS.installDir;
  // The agent's console output (start-up lines, a crash's stack trace); its own log is in dataDir.
  const consoleLog = path.win32.join(installDir, "agent-console.log");
  const launcherFile = path.win32.join(installDir, "run-agent.ps1");

  const launcher = renderWindowsLauncher({
    installDir,
    node: NODE_PLACEHOLDER,
    commandLine: windowsAgentArgv(options).map(windowsCommandLineArg).join(" "),
    consoleLog,
  });
  if (launcher.split(NODE_PLACEHOLDER).length !== 2) {
    throw new ValidationError("Windows bootstrap settings", [`no value may contain ${NODE_PLACEHOLDER}`]);
  }
  const taskArguments = ["-NoProfile", "-NonInteractive", "-ExecutionPolicy", "Bypass", "-File", launcherFile]
    .map(windowsCommandLineArg)
    .join(" ");

  const settings: Array<[string, string | number]> = [
    ["NbfControllerUrl", options.controllerUrl],
    ["NbfControllerUrls", agentControllerUrls(options).join(", ")],
    ["NbfArtifactUrl", options.artifactUrl],
    ["NbfArtifactSha256", options.artifactSha256],
    ["NbfArtifactVersion", options.artifactVersion ?? ""],
    ["NbfReleaseKeyPem", options.releasePublicKeyPem ?? ""],
    ["NbfBootstrapToken", options.bootstrapToken],
    ["NbfPasswordHash", options.passwordHash ?? ""],
    ["NbfDataDir", dataDir],
    ["NbfInstallDir", installDir],
    ["NbfNotebookPort", options.notebookPort],
    ["NbfPublicPort", options.publicPort ?? 0],
    ["NbfControllerCaPem", options.controllerCaPem ?? ""],
    ["NbfControllerFingerprint", options.controllerFingerprint ?? ""],
    ["NbfAcmeCaPem", options.certificate?.caPem ?? ""],
    ["NbfAcmeChallengePort", options.certificate?.challengePort ?? 0],
    ["NbfPythonVersion", options.pythonVersion ?? WINDOWS_DEFAULTS.pythonVersion],
    ["NbfNodeDistUrl", options.nodeDistUrl ?? WINDOWS_DEFAULTS.nodeDistUrl],
    ["NbfLauncher", launcher],
    ["NbfTaskArguments", taskArguments],
  ];
  const block = settings
    .map(
      ([name, value]) => `$${name} = ${typeof value === "number" ? String(value) : powershellQuote(value)}`,
    )
    .join("\n");
  const template = bootstrapTemplate();
  if (!template.includes(SETTINGS_MARKER))
    throw new Error(`windows-bootstrap.ps1 lost its ${SETTINGS_MARKER} line`);
  return template.replace(SETTINGS_MARKER, () => block);
}

/**
 * One argument of a Windows command line, quoted so CommandLineToArgvW (and so PowerShell's
 * `-File` parameter parsing) reads it back unchanged.
 */
export function windowsCommandLineArg(arg: string): string {
  if (arg !== "" && !/[\s"]/.test(arg)) return arg;
  let out = '"';
  let backslashes = 0;
  for (const ch of arg) {
    if (ch === "\\") {
      backslashes += 1;
      continue;
    }
    out += ch === '"' ? `${"\\".repeat(backslashes * 2 + 1)}"` : `${"\\".repeat(backslashes)}${ch}`;
    backslashes = 0;
  }
  return `${out}${"\\".repeat(backslashes * 2)}"`;
}

let template: string | undefined;
function bootstrapTemplate(): string {
  template ??= readFileSync(new URL("./windows-bootstrap.ps1", import.meta.url), "utf8");
  return template;
}
