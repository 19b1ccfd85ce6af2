/**
 * The software side of an emulated VM. Resource Manager only says a VM is running; what runs
 * inside it is the guest layer's job: `SandboxGuests` boots the VM's customData for real, and
 * `NoGuests` runs nothing (for benchmarks of the Resource Manager path alone).
 */
export interface GuestVm {
  /** The VM's resource id: one guest per id. */
  id: string;
  name: string;
  osType: "Linux" | "Windows";
  /** base64 customData as the VM was created with it, or null. */
  customData: string | null;
}

export interface GuestStatus {
  state: "booting" | "running" | "halted" | "failed" | "not-booted";
  /** What the guest did last, or why it failed. */
  detail: string;
  /** The notebook's loopback port inside the sandbox, once chosen. */
  notebookPort: number | null;
  dir: string | null;
}

export interface Guests {
  /** Boots the VM's software (first boot and every start). Never throws: failures are recorded. */
  boot(vm: GuestVm): Promise<void>;
  /** Stops what runs in the VM (deallocate, power off). */
  halt(vmId: string): Promise<void>;
  /** Halts and removes everything the guest left (VM deleted). */
  destroy(vmId: string): Promise<void>;
  status(vmId: string): GuestStatus | undefined;
  /** Halts every guest (the emulator's VMs live as long as the emulator). */
  close(): Promise<void>;
}

export class NoGuests implements Guests {
  async boot(): Promise<void> {}
  async halt(): Promise<void> {}
  async destroy(): Promise<void> {}
  status(): GuestStatus | undefined {
    return undefined;
  }
  async close(): Promise<void> {}
}
