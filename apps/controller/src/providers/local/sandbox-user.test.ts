import { describe, expect, it } from "vitest";
import { sandboxUserMarker, sandboxUserName } from "./sandbox-user.js";

// What useradd accepts on Debian (and what the agent's run-as setting allows), within 32 characters.
const VALID_USER = /^[a-z_][a-z0-9_-]{0,31}$/;

describe("sandboxUserName", () => {
  it("is a valid user name of at most 32 characters for any VM name", () => {
    for (const vm of ["a", "demo", "nb1", "x".repeat(63), `a${"-b".repeat(31)}`, "team-a-notebook-0001"]) {
      const name = sandboxUserName("/var/lib/nbfleet/sandboxes/0123456789ab", vm);
      expect(name, vm).toMatch(VALID_USER);
      expect(name.length, vm).toBeLessThanOrEqual(32);
    }
  });

  it("reads as the VM's name and tells machines and controllers apart", () => {
    expect(sandboxUserName("/srv/a", "demo")).toMatch(/^nbf-demo-[0-9a-f]{8}$/);
    const long = "a-very-long-machine-name-that-shares-a-prefix";
    expect(sandboxUserName("/srv/a", `${long}-1`)).not.toBe(sandboxUserName("/srv/a", `${long}-2`));
    expect(sandboxUserName("/srv/a", "demo")).not.toBe(sandboxUserName("/srv/b", "demo"));
    expect(sandboxUserName("/srv/a", "demo")).toBe(sandboxUserName("/srv/a", "demo"));
    // A cut name never ends in a dash before the hash.
    expect(sandboxUserName("/srv/a", "abcdefghijklmnopq-rst")).toMatch(/^nbf-abcdefghijklmnopq-[0-9a-f]{8}$/);
  });

  it("marks the user with the VM it belongs to", () => {
    expect(sandboxUserMarker("demo")).toBe("nbfleet sandbox demo");
  });
});
