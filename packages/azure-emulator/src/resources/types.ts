/**
 * What each emulated resource type supplies: how a PUT body becomes a stored resource (checked
 * the way Azure checks it), the work its long-running operation does, why it may not be deleted,
 * what deleting it takes with it, fields computed when it is shown, and its POST actions.
 */
import type { ArmError } from "../arm/errors.js";
import type { Operations } from "../arm/operations.js";
import type { ResourceGroup, ResourceStore, StoredResource } from "../arm/store.js";
import type { Guests } from "../guest/guests.js";

export interface Durations {
  /** Network resources (VNet, NSG, public IP, NIC) and VM extensions. */
  network: number;
  /** Creating or updating a VM. */
  compute: number;
  /** start, deallocate, restart, powerOff. */
  power: number;
  /** Deleting a resource or a resource group. */
  delete: number;
}

export interface EmulatorCore {
  store: ResourceStore;
  operations: Operations;
  guests: Guests;
  durations: Durations;
  log(message: string, fields?: Record<string, unknown>): void;
  /** The handler of a resource type (case-insensitive), if the emulator knows it. */
  handler(type: string): TypeHandler | undefined;
  /** Deletes a resource now with its cascade (used by VM and resource-group deletion). */
  removeNow(resource: StoredResource): Promise<void>;
}

export interface PutInput {
  core: EmulatorCore;
  group: ResourceGroup;
  id: string;
  type: string;
  name: string;
  body: Record<string, unknown>;
  existing: StoredResource | undefined;
  /** For child resources (VM extensions): the parent. */
  parent?: StoredResource;
}

export interface Action {
  /** Refuses the action (ArmError) or returns the state to show while it runs. */
  begin(core: EmulatorCore, resource: StoredResource): void;
  run(core: EmulatorCore, resource: StoredResource): Promise<void> | void;
}

export interface TypeHandler {
  type: string;
  /** Azure's naming rule for this type: a problem description, or null when the name is fine. */
  nameProblem(name: string): string | null;
  /** Checks a PUT body (ArmError when Azure would refuse it) and returns properties to store. */
  build(input: PutInput): Omit<StoredResource, "busy" | "deleting">;
  /** Right after a PUT was accepted (e.g. a VM's OS disk comes into being). */
  accepted?(core: EmulatorCore, resource: StoredResource, created: boolean): void;
  /** The work of a PUT's long-running operation. */
  provision?(core: EmulatorCore, resource: StoredResource, created: boolean): Promise<void> | void;
  /** Why it may not be deleted now (an ArmError to answer), or null. */
  inUse?(core: EmulatorCore, resource: StoredResource): ArmError | null;
  /** What goes with it when it is deleted (runs before it leaves the store). */
  remove?(core: EmulatorCore, resource: StoredResource): Promise<void> | void;
  /** Computed fields merged into `properties` when shown; `expand` is the request's `$expand`. */
  render?(core: EmulatorCore, resource: StoredResource, expand: string | null): Record<string, unknown>;
  /** Child resource types under this one by their path segment (`extensions`). */
  children?: Record<string, TypeHandler>;
  actions?: Record<string, Action>;
  /** How long its PUT takes. */
  putDuration(core: EmulatorCore): number;
  /** The provisioningState shown while a PUT runs. */
  pendingState: "Updating" | "Creating";
}
