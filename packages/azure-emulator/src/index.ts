/**
 * @nbfleet/azure-emulator: an HTTPS emulator of the Azure Resource Manager subset nbfleet uses
 * (resource groups, VNets/subnets, NSGs, public IPs, NICs, VMs with power actions, OS disks, VM
 * extensions), so the real Azure SDK runs against it offline.
 */
export { ArmError } from "./arm/errors.js";
export { ALLOCATION_FAILED, type FaultRule } from "./arm/faults.js";
export { AZURE_LIMITS, type ThrottleLimits } from "./arm/throttle.js";
export { DEFAULT_DURATIONS, Emulator, type EmulatorStats } from "./emulator.js";
export type { GuestStatus, GuestVm, Guests } from "./guest/guests.js";
export { bootstrapScript, bootstrapSettings, type BootstrapSettings } from "./guest/custom-data.js";
export type { Durations } from "./resources/types.js";
export { type RunningEmulator, type StartOptions, startEmulator } from "./server.js";
