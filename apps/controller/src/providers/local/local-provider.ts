/**
 * The embedded default provider: a machine is a sandbox directory plus its process tree.
 * It boots the way a cloud VM does — by running the Linux bootstrap script from
 * packages/scripts, which downloads the agent artifact from this controller, checks its
 * sha256 and starts the agent detached with its bootstrap token — so agents are separate
 * processes that outlive a controller restart and reconnect on their own.
 *
 *   <root>/<vm>/               0710 root:<the machine's user> (0700 when the controller is not root)
 *   <root>/<vm>/bootstrap.sh   the script as rendered for this machine (0700: it holds the token)
 *   <root>/<vm>/home/          the machine's user's home (0700), when the controller is root
 *   <root>/<vm>/install/       the agent installation (bundle, launcher, agent.pid, console log)
 *   <root>/<vm>/agent/         the agent's data dir (profile, notebooks, logs, state)
 */
import { execFile } from "node:child_process";
import { chmod, chown, mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import {
  type ControllerTrust,
  agentEnvironment,
  freeLoopbackPort,
  linuxGuestLayout,
  renderLinuxBootstrap,
  stopSandboxGuest,
  trustSettings,
} from "@nbfleet/scripts";
import { AGENT_ARTIFACT_PATH as ARTIFACT_PATH } from "@nbfleet/shared";
import { type ArtifactInfo, artifactVersionSettings } from "../../artifact-info.js";
import { bootstrapCertificate } from "../bootstrap-certificate.js";
import type { Provider, ProviderVm, ProvisionContext, ProvisionResult } from "../types.js";
import { endSandboxUserProcesses, ensureSandboxUser, removeSandboxUser } from "./sandbox-user.js";

const run = promisify(execFile);

export interface LocalProviderOptions {
  /** Where sandboxes live (see sandboxRoot). */
  root: string;
  artifact: ArtifactInfo;
  /** The release public key (SPKI PEM) guests verify upgrade artifacts with (artifacts/release-key.ts). */
  releasePublicKeyPem?: string;
  /** How agents verify a controller on TLS: its CA, or its certificate's SHA-256 fingerprint. */
  controllerTrust?: ControllerTrust;
}

interface SandboxData {
  dir: string;
  port: number;
  /** The machine's own unprivileged user (see sandbox-user.ts); absent when the controller is not root. */
  user?: string;
}

export class LocalProvider implements Provider {
  readonly name = "local";

  constructor(private readonly options: LocalProviderOptions) {}

  async create(vm: ProviderVm, context: ProvisionContext): Promise<ProvisionResult> {
    const dir = path.join(this.options.root, vm.name);
    await rm(dir, { recursive: true, force: true });
    const user = await this.prepareSandbox(vm.name, dir);
    const port = await freeLoopbackPort();
    const script = renderLinuxBootstrap({
      mode: "sandbox",
      controllerUrl: context.controllerUrl,
      ...(context.controllerUrls ? { controllerUrls: context.controllerUrls } : {}),
      artifactUrl: `${context.controllerUrl.replace(/\/+$/, "")}${ARTIFACT_PATH}`,
      artifactSha256: this.options.artifact.sha256,
      ...artifactVersionSettings(this.options.artifact, this.options.releasePublicKeyPem),
      bootstrapToken: context.bootstrapToken,
      dataDir: path.join(dir, "agent"),
      installDir: path.join(dir, "install"),
      notebookPort: port,
      bindIp: "127.0.0.1",
      passwordHash: context.passwordHash,
      node: process.execPath,
      nodeDistUrl: null,
      ...(user ? { runAs: user } : {}),
      ...trustSettings(this.options.controllerTrust),
      ...(context.certificate ? { certificate: bootstrapCertificate(context.certificate) } : {}),
    });
    await writeFile(path.join(dir, "bootstrap.sh"), script, { mode: 0o700 });
    await this.boot(dir);
    const data: SandboxData = { dir, port, ...(user ? { user } : {}) };
    return { notebookUrl: `https://127.0.0.1:${port}/`, providerData: data };
  }

  /** Runs the machine's bootstrap again: idempotent, it starts the agent if it is not running. */
  async start(vm: ProviderVm): Promise<void> {
    await this.boot(sandbox(vm).dir);
  }

  /** Stops the agent with SIGINT, which stops its notebook server too. */
  async stop(vm: ProviderVm): Promise<void> {
    const { dir } = sandbox(vm);
    // Only processes that still are the ones their pid files recorded; an agent killed earlier
    // may have left its notebook server behind: it goes with the machine.
    await stopSandboxGuest(
      linuxGuestLayout(path.join(dir, "install")),
      path.join(dir, "agent", "state", "notebook.pid.json"),
    );
    // Kernels the server left behind and a terminal's background jobs: a stopped machine runs nothing.
    if (isRoot()) await endSandboxUserProcesses(this.options.root, vm.name);
  }

  async restart(vm: ProviderVm): Promise<void> {
    await this.stop(vm);
    await this.start(vm);
  }

  /** Also cleans up after a create that failed before it recorded the sandbox. */
  async delete(vm: ProviderVm): Promise<void> {
    if (vm.providerData) await this.stop(vm);
    await rm(vm.providerData ? sandbox(vm).dir : path.join(this.options.root, vm.name), {
      recursive: true,
      force: true,
    });
    if (isRoot()) await removeSandboxUser(this.options.root, vm.name);
  }

  /**
   * The sandbox directory, private to the machine: as root, the machine gets its own user, which
   * alone (besides root) may enter the directory, and a 0700 home inside it; otherwise everything
   * runs as the controller's user and the directory is 0700. Returns the user, if any.
   */
  private async prepareSandbox(vmName: string, dir: string): Promise<string | null> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (!isRoot()) return null;
    const home = path.join(dir, "home");
    const user = await ensureSandboxUser(this.options.root, vmName, home);
    await chown(dir, 0, user.gid);
    await chmod(dir, 0o710);
    await mkdir(home, { mode: 0o700 });
    await chown(home, user.uid, user.gid);
    return user.user;
  }

  private async boot(dir: string): Promise<void> {
    try {
      // A minimal environment: the controller's own (NBFLEET_ADMIN_TOKEN, say) never reaches a guest.
      await run("sh", [path.join(dir, "bootstrap.sh")], {
        env: agentEnvironment(),
        timeout: 120_000,
        maxBuffer: 4 * 1024 * 1024,
      });
    } catch (error) {
      const { stderr, stdout } = error as { stderr?: string; stdout?: string };
      const tail = `${stdout ?? ""}${stderr ?? ""}`.trim().split("\n").slice(-15).join("\n");
      throw new Error(`the sandbox bootstrap failed: ${tail || (error as Error).message}`);
    }
  }
}

function sandbox(vm: ProviderVm): SandboxData {
  const data = vm.providerData as Partial<SandboxData> | null;
  if (!data?.dir || typeof data.port !== "number") {
    throw new Error(`VM ${vm.name} has no sandbox recorded (was it created by the local provider?)`);
  }
  return data as SandboxData;
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}
