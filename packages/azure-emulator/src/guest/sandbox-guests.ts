/**
 * Guests that really run: a booting Linux VM's customData is read (guest/custom-data.ts) and
 * its nbfleet bootstrap is run as the local sandbox runs it — `renderLinuxBootstrap` in sandbox
 * mode with everything the customData says (controller URL, artifact URL and checksum, one-time
 * token, controller CA or fingerprint, password hash) and four things a shared host needs
 * instead of what a VM has: a sandbox directory instead of /opt/nbfleet and /var/lib/nbfleet, a
 * free loopback port instead of 9999 behind NSG 443, a detached agent instead of a systemd unit,
 * and the agent's default notebook user instead of the VM's admin user. So the real bootstrap
 * downloads the real artifact and the real agent dials the controller.
 *
 *   <root>/<vm>/custom-data.yaml  the customData as the VM received it (0600: it holds the token)
 *   <root>/<vm>/bootstrap.sh      the sandbox-mode script run for it (0700)
 *   <root>/<vm>/boot.log          the script's output, appended per boot
 *   <root>/<vm>/install/, agent/  the agent's installation and data dir
 */
import { execFile } from "node:child_process";
import { appendFile, mkdir, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { freeLoopbackPort, linuxGuestLayout, renderLinuxBootstrap, stopSandboxGuest } from "@nbfleet/scripts";
import { dataPaths } from "@nbfleet/shared/agent-data";
import { bootstrapScript, bootstrapSettings } from "./custom-data.js";
import type { GuestStatus, GuestVm, Guests } from "./guests.js";

const run = promisify(execFile);
const BOOT_TIMEOUT_MS = 180_000;

export interface SandboxGuestsOptions {
  /** Where guest sandboxes live (see guestRoot). */
  root: string;
  /** The Node.js the agent runs with (default: this one). */
  node?: string;
  log(message: string, fields?: Record<string, unknown>): void;
}

interface Guest {
  vm: GuestVm;
  dir: string;
  port: number | null;
  status: GuestStatus;
  /** Boots, halts and deletions of one guest run one after another. */
  queue: Promise<void>;
}

export class SandboxGuests implements Guests {
  private readonly guests = new Map<string, Guest>();

  constructor(private readonly options: SandboxGuestsOptions) {}

  boot(vm: GuestVm): Promise<void> {
    const guest = this.guest(vm);
    return this.enqueue(guest, () => this.bootNow(guest));
  }

  halt(vmId: string): Promise<void> {
    const guest = this.guests.get(vmId.toLowerCase());
    return guest ? this.enqueue(guest, () => this.haltNow(guest)) : Promise.resolve();
  }

  destroy(vmId: string): Promise<void> {
    const guest = this.guests.get(vmId.toLowerCase());
    if (!guest) return Promise.resolve();
    return this.enqueue(guest, async () => {
      await this.haltNow(guest);
      await rm(guest.dir, { recursive: true, force: true });
      this.guests.delete(vmId.toLowerCase());
    });
  }

  status(vmId: string): GuestStatus | undefined {
    const guest = this.guests.get(vmId.toLowerCase());
    return guest ? { ...guest.status } : undefined;
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.guests.values()].map((guest) => this.enqueue(guest, () => this.haltNow(guest))),
    );
  }

  private guest(vm: GuestVm): Guest {
    const key = vm.id.toLowerCase();
    let guest = this.guests.get(key);
    if (!guest) {
      const dir = path.join(this.options.root, vm.name.toLowerCase());
      guest = {
        vm,
        dir,
        port: null,
        status: { state: "not-booted", detail: "", notebookPort: null, dir },
        queue: Promise.resolve(),
      };
      this.guests.set(key, guest);
    }
    return guest;
  }

  private enqueue(guest: Guest, work: () => Promise<void>): Promise<void> {
    const next = guest.queue.then(work, work);
    guest.queue = next.catch(() => undefined);
    return next;
  }

  private async bootNow(guest: Guest): Promise<void> {
    const { vm } = guest;
    const set = (state: GuestStatus["state"], detail: string) => {
      guest.status = { state, detail, notebookPort: guest.port, dir: guest.dir };
      this.options.log(`guest ${vm.name}: ${detail}`, { vm: vm.name, state });
    };
    if (vm.osType !== "Linux" || vm.customData === null) {
      set(
        "not-booted",
        vm.osType !== "Linux"
          ? "Windows guests are not run by the emulator (extensions are recorded only)"
          : "no customData to run",
      );
      return;
    }
    set("booting", "booting: running the customData's nbfleet bootstrap in sandbox mode");
    try {
      const settings = await bootstrapSettings(bootstrapScript(vm.customData));
      await mkdir(guest.dir, { recursive: true, mode: 0o755 });
      guest.port ??= await freeLoopbackPort();
      const script = renderLinuxBootstrap({
        mode: "sandbox",
        controllerUrl: settings.controllerUrl,
        artifactUrl: settings.artifactUrl,
        artifactSha256: settings.artifactSha256,
        bootstrapToken: settings.bootstrapToken,
        ...(settings.controllerCaPem ? { controllerCaPem: settings.controllerCaPem } : {}),
        ...(settings.controllerFingerprint ? { controllerFingerprint: settings.controllerFingerprint } : {}),
        ...(settings.controllerCertPem ? { controllerCertPem: settings.controllerCertPem } : {}),
        ...(settings.passwordHash ? { passwordHash: settings.passwordHash } : {}),
        ...(settings.allowRoot ? { allowRoot: true } : {}),
        // As on a real VM, the agent reports the public URL (and has the FQDN in its certificate).
        ...(settings.hostnames.length > 0 ? { hostnames: settings.hostnames } : {}),
        ...(settings.publicUrl ? { publicUrl: settings.publicUrl } : {}),
        // ACME as the VM would do it: the CA validates the FQDN's challenge on this host.
        ...(settings.certificate ? { certificate: settings.certificate } : {}),
        dataDir: path.join(guest.dir, "agent"),
        installDir: path.join(guest.dir, "install"),
        notebookPort: guest.port,
        bindIp: "127.0.0.1",
        node: this.options.node ?? process.execPath,
        nodeDistUrl: null,
      });
      await writeFile(path.join(guest.dir, "custom-data.yaml"), Buffer.from(vm.customData, "base64"), {
        mode: 0o600,
      });
      await writeFile(path.join(guest.dir, "bootstrap.sh"), script, { mode: 0o700 });
      const output = await run("sh", [path.join(guest.dir, "bootstrap.sh")], {
        timeout: BOOT_TIMEOUT_MS,
        maxBuffer: 4 * 1024 * 1024,
      }).then(
        ({ stdout, stderr }) => ({ ok: true, text: `${stdout}${stderr}` }),
        (error: { stdout?: string; stderr?: string; message: string }) => ({
          ok: false,
          text: `${error.stdout ?? ""}${error.stderr ?? ""}` || error.message,
        }),
      );
      await appendFile(
        path.join(guest.dir, "boot.log"),
        `--- boot ${new Date().toISOString()}\n${output.text}\n`,
      );
      if (output.ok) set("running", `booted; the notebook listens on 127.0.0.1:${guest.port}`);
      else set("failed", `the bootstrap failed: ${output.text.trim().split("\n").slice(-5).join(" | ")}`);
    } catch (error) {
      set("failed", `boot failed: ${(error as Error).message}`);
    }
  }

  private async haltNow(guest: Guest): Promise<void> {
    const install = linuxGuestLayout(path.join(guest.dir, "install"));
    // An agent killed earlier may have left its notebook server behind: it goes with the machine.
    await stopSandboxGuest(install, dataPaths(path.join(guest.dir, "agent")).pidFile);
    if (guest.status.state !== "not-booted") {
      guest.status = { ...guest.status, state: "halted", detail: "halted" };
    }
  }
}
