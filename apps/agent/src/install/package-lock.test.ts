import { describe, expect, it } from "vitest";
import { describeHolder, packageLockHeld } from "./package-lock.js";

const APT_ARGV = ["apt-get", "install", "-y", "python3-numpy"];

describe("packageLockHeld", () => {
  it("reads the lock and its holder from apt-get's message", () => {
    const info = packageLockHeld(APT_ARGV, {
      code: 100,
      stdout: "",
      stderr:
        "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 9158 (python3)\n" +
        "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?\n",
    });
    expect(info).toEqual({ lock: "/var/lib/dpkg/lock-frontend", holderPid: 9158, holderName: "python3" });
    expect(describeHolder(info!)).toBe("process 9158 (python3)");
  });

  it("understands the older apt message without a holder", () => {
    const info = packageLockHeld(APT_ARGV, {
      code: 100,
      stdout: "",
      stderr: "E: Could not get lock /var/lib/dpkg/lock - open (11: Resource temporarily unavailable)\n",
    });
    expect(info).toEqual({ lock: "/var/lib/dpkg/lock", holderPid: null, holderName: null });
    expect(describeHolder(info!)).toBe("another process");
  });

  it("reads zypper's lock message", () => {
    const info = packageLockHeld(["zypper", "--non-interactive", "install", "x"], {
      code: 7,
      stdout: "",
      stderr:
        "System management is locked by the application with pid 4242 (zypper).\nClose this application before trying again.\n",
    });
    expect(info).toEqual({ lock: "/run/zypp.pid", holderPid: 4242, holderName: "zypper" });
  });

  it("does not call other failures a lock", () => {
    expect(
      packageLockHeld(APT_ARGV, { code: 100, stdout: "", stderr: "E: Unable to locate package nope\n" }),
    ).toBeNull();
    expect(
      packageLockHeld(APT_ARGV, {
        code: 1,
        stdout: "",
        stderr: "E: Could not get lock /var/lib/dpkg/lock\n",
      }),
    ).toBeNull();
    expect(
      packageLockHeld(["pip", "install"], { code: 100, stdout: "", stderr: "Could not get lock x" }),
    ).toBeNull();
  });
});
