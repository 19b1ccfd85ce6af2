/**
 * Reads what a Linux VM's customData tells the machine to do: the cloud-config written by
 * @nbfleet/scripts (`renderCloudInit`) holds the nbfleet bootstrap script in `write_files` and
 * runs it from `runcmd`. The script's settings are the `NBF_*=` assignments at its top; `sh`
 * itself evaluates them, so quoting is read exactly as a guest would read it.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import type { GuestCertificate } from "@nbfleet/scripts";
import { parse } from "yaml";

const run = promisify(execFile);

export interface BootstrapSettings {
  controllerUrl: string;
  artifactUrl: string;
  artifactSha256: string;
  bootstrapToken: string;
  controllerCaPem: string | null;
  controllerFingerprint: string | null;
  controllerCertPem: string | null;
  passwordHash: string | null;
  runAs: string | null;
  allowRoot: boolean;
  /** The port the notebook listens on inside a real VM (9999 on Azure). */
  notebookPort: number;
  /** The agent's `--hostname`s (the VM's FQDN on Azure). */
  hostnames: string[];
  /** The agent's `--public-url` (`https://<fqdn>/` on Azure), if any. */
  publicUrl: string | null;
  /** ACME: the agent's `--certificate-mode acme --acme-*` and the CA the bootstrap writes; null = self-signed. */
  certificate: GuestCertificate | null;
}

export class CustomDataError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CustomDataError";
  }
}

/** The bootstrap script a cloud-config customData runs (`runcmd: [[sh, PATH]]` + `write_files`). */
export function bootstrapScript(customDataBase64: string): string {
  const text = Buffer.from(customDataBase64, "base64").toString("utf8");
  if (!text.startsWith("#cloud-config")) {
    throw new CustomDataError("the customData is not a cloud-config (it does not start with #cloud-config)");
  }
  let config: unknown;
  try {
    config = parse(text);
  } catch (error) {
    throw new CustomDataError(`the customData is not valid YAML: ${(error as Error).message}`);
  }
  const files = ((config as { write_files?: unknown }).write_files ?? []) as Array<{
    path?: unknown;
    content?: unknown;
  }>;
  const commands = ((config as { runcmd?: unknown }).runcmd ?? []) as unknown[];
  for (const command of commands) {
    const argv = Array.isArray(command) ? command.map(String) : String(command).split(/\s+/);
    if (argv.length !== 2 || argv[0] !== "sh") continue;
    const file = files.find((f) => f.path === argv[1]);
    if (typeof file?.content === "string") return file.content;
  }
  throw new CustomDataError(
    "the cloud-config runs no script it writes (expected runcmd [sh, <path>] and that path in write_files)",
  );
}

const START = /^NBF_MODE=/m;
const END = /^NBF_CHANGED=0$/m;

/** The settings of an nbfleet bootstrap script (systemd mode, as cloud-init would run it). */
export async function bootstrapSettings(script: string): Promise<BootstrapSettings> {
  const start = script.search(START);
  const end = script.search(END);
  if (start < 0 || end < start) {
    throw new CustomDataError(
      "the script is not an nbfleet bootstrap (no NBF_MODE= … NBF_CHANGED=0 settings block)",
    );
  }
  const names = [
    "NBF_CONTROLLER_URL",
    "NBF_ARTIFACT_URL",
    "NBF_ARTIFACT_SHA256",
    "NBF_BOOTSTRAP_TOKEN",
    "NBF_CONTROLLER_CA_PEM",
    "NBF_CONTROLLER_FINGERPRINT",
    "NBF_CONTROLLER_CERT_PEM",
    "NBF_RUN_AS",
    "NBF_ALLOW_ROOT",
    "NBF_NOTEBOOK_PORT",
    "NBF_PASSWORD_HASH",
    "NBF_LAUNCHER",
    "NBF_ACME_CA_PEM",
  ];
  const block = script.slice(start, end);
  const values = await shellValues(`${block}\nprintf '%s\\0' ${names.map((n) => `"$${n}"`).join(" ")}`);
  const get = (name: string) => values[names.indexOf(name)] ?? "";
  const agentArgs = await launcherArgv(get("NBF_LAUNCHER"));
  const flags = (name: string) =>
    agentArgs.flatMap((arg, at) => (arg === name ? [agentArgs[at + 1] ?? ""] : []));
  return {
    controllerUrl: get("NBF_CONTROLLER_URL"),
    artifactUrl: get("NBF_ARTIFACT_URL"),
    artifactSha256: get("NBF_ARTIFACT_SHA256"),
    bootstrapToken: get("NBF_BOOTSTRAP_TOKEN"),
    controllerCaPem: get("NBF_CONTROLLER_CA_PEM") || null,
    controllerFingerprint: get("NBF_CONTROLLER_FINGERPRINT") || null,
    controllerCertPem: get("NBF_CONTROLLER_CERT_PEM") || null,
    passwordHash: get("NBF_PASSWORD_HASH") || null,
    runAs: get("NBF_RUN_AS") || null,
    allowRoot: get("NBF_ALLOW_ROOT") === "1",
    notebookPort: Number(get("NBF_NOTEBOOK_PORT")),
    hostnames: flags("--hostname"),
    publicUrl: flags("--public-url")[0] ?? null,
    certificate: acmeCertificate((name) => flags(name)[0], get("NBF_ACME_CA_PEM")),
  };
}

function acmeCertificate(flag: (name: string) => string | undefined, caPem: string): GuestCertificate | null {
  if (flag("--certificate-mode") !== "acme") return null;
  const challenge = flag("--acme-challenge");
  const email = flag("--acme-email");
  return {
    mode: "acme",
    hostname: flag("--acme-hostname") ?? "",
    directoryUrl: flag("--acme-directory") ?? "",
    email: email ?? null,
    ...(caPem ? { caPem } : {}),
    challenge: challenge === "tls-alpn-01" ? "tls-alpn-01" : "http-01",
    challengePort: Number(flag("--acme-challenge-port")),
  };
}

/** The agent's command line in the launcher (its `set --` line, or an older one's `exec`), as sh splits it. */
async function launcherArgv(launcher: string): Promise<string[]> {
  const line = launcher.split("\n").find((l) => l.startsWith("set -- ") || l.startsWith("exec "));
  if (!line) throw new CustomDataError("the bootstrap's agent launcher has no agent command line");
  return shellValues(`set -- ${line.replace(/^(set --|exec) /, "")}\nprintf '%s\\0' "$@"`);
}

async function shellValues(script: string): Promise<string[]> {
  const { stdout } = await run("sh", ["-c", script], { maxBuffer: 1024 * 1024, timeout: 10_000 });
  return stdout.split("\0").slice(0, -1);
}
