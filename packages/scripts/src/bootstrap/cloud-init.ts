/**
 * cloud-init user-data for Linux cloud VMs: writes the Linux bootstrap (systemd mode) to
 * /var/lib/nbfleet/bootstrap.sh and runs it once at first boot. And the customData encoding,
 * which refuses what Azure would refuse, before any cloud call.
 */
import { stringify } from "yaml";
import { ScriptsError } from "../errors.js";
import { renderLinuxBootstrap } from "./linux.js";
import type { LinuxBootstrapOptions } from "./options.js";

export const CLOUD_BOOTSTRAP_PATH = "/var/lib/nbfleet/bootstrap.sh";
/** Azure: "The maximum length of the binary array is 65535 bytes" (the decoded customData). */
export const AZURE_CUSTOM_DATA_MAX_BYTES = 65535;

export const CLOUD_DEFAULTS = {
  dataDir: "/var/lib/nbfleet/agent",
  installDir: "/opt/nbfleet",
  bindIp: "0.0.0.0",
  notebookPort: 9999,
  publicPort: 443,
} as const;

type Defaulted = keyof typeof CLOUD_DEFAULTS;
/** The Linux bootstrap settings without `mode` (always systemd); paths and ports have cloud defaults. */
export type CloudInitOptions = Omit<LinuxBootstrapOptions, "mode" | Defaulted> &
  Partial<Pick<LinuxBootstrapOptions, Defaulted>>;

export function renderCloudInit(options: CloudInitOptions): string {
  const script = renderLinuxBootstrap({ ...CLOUD_DEFAULTS, ...options, mode: "systemd" });
  const config = {
    write_files: [
      {
        path: CLOUD_BOOTSTRAP_PATH,
        owner: "root:root",
        // It holds the one-time bootstrap token.
        permissions: "0700",
        content: script,
      },
    ],
    runcmd: [["sh", CLOUD_BOOTSTRAP_PATH]],
  };
  return `#cloud-config\n${stringify(config, { lineWidth: 0 })}`;
}

/** Base64 of the user-data for `osProfile.customData`; refuses more than Azure accepts. */
export function customDataBase64(userData: string): string {
  const bytes = Buffer.byteLength(userData, "utf8");
  if (bytes > AZURE_CUSTOM_DATA_MAX_BYTES) {
    throw new ScriptsError(
      "NBF_CUSTOM_DATA_TOO_LARGE",
      `the cloud-init user-data is ${bytes} bytes; Azure accepts at most ${AZURE_CUSTOM_DATA_MAX_BYTES} bytes of customData (shorten the controller CA or the extra settings)`,
      { bytes, limit: AZURE_CUSTOM_DATA_MAX_BYTES },
    );
  }
  return Buffer.from(userData, "utf8").toString("base64");
}
