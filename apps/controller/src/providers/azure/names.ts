/**
 * Azure's naming rules for what nbfleet creates per machine, checked before any call: the VM
 * name itself, the computer name (15 characters on Windows), the NIC/IP/disk names derived from
 * it, and the public IP's DNS label `<vm>-<fleet id>` (so the notebook is
 * `https://<label>.<region>.cloudapp.azure.com`).
 */
import { createHash } from "node:crypto";

export type GuestOs = "linux" | "windows";

export interface VmResourceNames {
  vm: string;
  computerName: string;
  publicIp: string;
  nic: string;
  osDisk: string;
  dnsLabel: string;
  extension: string;
}

const VM_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
const RESOURCE_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$/;
const DNS_LABEL = /^[a-z][a-z0-9-]{1,61}[a-z0-9]$/;

/** Six hex characters that tell fleets apart in DNS labels (labels are unique per region). */
export function fleetId(subscriptionId: string, resourceGroup: string): string {
  return createHash("sha256")
    .update(`${subscriptionId.toLowerCase()}/${resourceGroup.toLowerCase()}`)
    .digest("hex")
    .slice(0, 6);
}

export function vmResourceNames(name: string, fleet: string): VmResourceNames {
  return {
    vm: name,
    computerName: name,
    publicIp: `${name}-ip`,
    nic: `${name}-nic`,
    osDisk: `${name}-osdisk`,
    dnsLabel: `${name.toLowerCase()}-${fleet}`,
    extension: "nbfleet-bootstrap",
  };
}

/** Why Azure would refuse a machine of this name, or null when it is fine. */
export function azureNameProblem(name: string, os: GuestOs, fleet: string): string | null {
  if (!VM_NAME.test(name) || /[.-]$/.test(name)) {
    return "Azure VM names are 1-64 letters, digits, underscores, periods and hyphens, not starting with an underscore or ending with a period or hyphen";
  }
  if (os === "windows" && (name.length > 15 || /^\d+$/.test(name))) {
    return `a Windows computer name is at most 15 characters and not only digits (got ${name.length} characters)`;
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9-]*$/.test(name)) {
    return "the name is also the computer name: letters, digits and hyphens only";
  }
  const names = vmResourceNames(name, fleet);
  for (const derived of [names.publicIp, names.nic, names.osDisk]) {
    if (!RESOURCE_NAME.test(derived))
      return `the derived resource name ${derived} would break Azure's 80-character rule`;
  }
  if (!DNS_LABEL.test(names.dnsLabel)) {
    return `the public DNS label ${names.dnsLabel} must be 3-63 lowercase letters, digits and hyphens starting with a letter, so the VM name may have at most ${63 - fleet.length - 1} characters`;
  }
  return null;
}
