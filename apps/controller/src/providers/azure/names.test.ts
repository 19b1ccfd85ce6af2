import { describe, expect, it } from "vitest";
import { azureNameProblem, fleetId, vmResourceNames } from "./names.js";
import { vmStateFromInstanceView } from "./power-state.js";

const fleet = fleetId("sub", "rg");

describe("Azure naming rules, before any call", () => {
  it("accepts nbfleet's usual names and derives the per-machine resource names", () => {
    expect(fleet).toMatch(/^[0-9a-f]{6}$/);
    expect(azureNameProblem("nb1", "linux", fleet)).toBeNull();
    expect(vmResourceNames("nb1", fleet)).toEqual({
      vm: "nb1",
      computerName: "nb1",
      publicIp: "nb1-ip",
      nic: "nb1-nic",
      osDisk: "nb1-osdisk",
      dnsLabel: `nb1-${fleet}`,
      extension: "nbfleet-bootstrap",
    });
  });

  it("refuses names Azure would refuse, saying why", () => {
    expect(azureNameProblem("a".repeat(57), "linux", fleet)).toMatch(/at most 56 characters/);
    expect(azureNameProblem("a".repeat(56), "linux", fleet)).toBeNull();
    expect(azureNameProblem("nb-", "linux", fleet)).toMatch(/not starting with an underscore or ending/);
    expect(azureNameProblem("has space", "linux", fleet)).toMatch(/1-64 letters/);
    expect(azureNameProblem("nb_1", "linux", fleet)).toMatch(/computer name/);
    expect(azureNameProblem("notebook-server-1", "windows", fleet)).toMatch(
      /Windows computer name is at most 15/,
    );
    expect(azureNameProblem("12345", "windows", fleet)).toMatch(/not only digits/);
    expect(azureNameProblem("9lives", "linux", fleet)).toMatch(/DNS label/);
  });
});

describe("instance view → machine state", () => {
  it("maps Azure power and provisioning states", () => {
    const view = (...codes: string[]) => codes.map((code) => ({ code }));
    expect(vmStateFromInstanceView(view("ProvisioningState/succeeded", "PowerState/running"))).toBe(
      "running",
    );
    expect(vmStateFromInstanceView(view("ProvisioningState/succeeded", "PowerState/deallocated"))).toBe(
      "stopped",
    );
    expect(vmStateFromInstanceView(view("ProvisioningState/succeeded", "PowerState/stopped"))).toBe(
      "stopped",
    );
    expect(vmStateFromInstanceView(view("ProvisioningState/updating", "PowerState/deallocating"))).toBe(
      "stopping",
    );
    expect(vmStateFromInstanceView(view("ProvisioningState/updating", "PowerState/starting"))).toBe(
      "starting",
    );
    expect(vmStateFromInstanceView(view("ProvisioningState/failed/AllocationFailed"))).toBe("failed");
    expect(vmStateFromInstanceView(view("ProvisioningState/failed"))).toBe("failed");
    expect(vmStateFromInstanceView(view("ProvisioningState/creating"))).toBe("provisioning");
    expect(vmStateFromInstanceView(undefined)).toBe("provisioning");
  });
});
