/** Azure's VM instance view (ProvisioningState/…, PowerState/…) as an nbfleet machine state. */
import type { VmState } from "@nbfleet/shared";

export interface InstanceStatus {
  code?: string;
}

const POWER: Record<string, VmState> = {
  starting: "starting",
  running: "running",
  stopping: "stopping",
  deallocating: "stopping",
  stopped: "stopped",
  deallocated: "stopped",
};

export function powerStateOf(statuses: InstanceStatus[] | undefined): string | null {
  const code = statuses?.find((s) => s.code?.startsWith("PowerState/"))?.code;
  return code ? code.slice("PowerState/".length).toLowerCase() : null;
}

export function vmStateFromInstanceView(statuses: InstanceStatus[] | undefined): VmState {
  const provisioning = statuses?.find((s) => s.code?.startsWith("ProvisioningState/"))?.code?.toLowerCase();
  // Azure writes `ProvisioningState/failed/<ErrorCode>`.
  if (provisioning?.startsWith("provisioningstate/failed")) return "failed";
  if (provisioning === "provisioningstate/deleting") return "deleting";
  const power = powerStateOf(statuses);
  if (power && POWER[power]) return POWER[power];
  return "provisioning";
}
