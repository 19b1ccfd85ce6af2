/**
 * Recognises "the package manager is busy" (another apt, unattended-upgrades, a zypper in
 * another shell) in a failed command, so the installer waits instead of failing.
 */
import type { CommandResult } from "./command-runner.js";

export interface PackageLockInfo {
  /** The lock file, when the message names it. */
  lock: string | null;
  holderPid: number | null;
  holderName: string | null;
}

const APT_LOCK = /Could not get lock (\S+?)\.?(?:\s|$)|Unable to acquire the dpkg frontend lock \(([^)]+)\)/;
const APT_HOLDER = /held by process (\d+)(?: \(([^)]*)\))?/;
const ZYPPER_LOCK = /System management is locked/;
const ZYPPER_HOLDER = /with pid (\d+)(?: \(([^)]*)\))?/;

/** apt-get exits 100 and zypper 7 when locked; anything else is a real failure. */
export function packageLockHeld(argv: readonly string[], result: CommandResult): PackageLockInfo | null {
  const tool = argv[0] ? argv[0].split("/").at(-1) : "";
  const text = `${result.stderr}\n${result.stdout}`;
  if ((tool === "apt-get" || tool === "apt") && result.code === 100) {
    const lock = APT_LOCK.exec(text);
    if (!lock) return null;
    const holder = APT_HOLDER.exec(text);
    return {
      lock: lock[1] ?? lock[2] ?? null,
      holderPid: holder ? Number(holder[1]) : null,
      holderName: holder?.[2] ?? null,
    };
  }
  if (tool === "zypper" && result.code === 7 && ZYPPER_LOCK.test(text)) {
    const holder = ZYPPER_HOLDER.exec(text);
    return {
      lock: "/run/zypp.pid",
      holderPid: holder ? Number(holder[1]) : null,
      holderName: holder?.[2] ?? null,
    };
  }
  return null;
}

export function describeHolder(info: PackageLockInfo): string {
  if (info.holderPid === null) return "another process";
  return info.holderName ? `process ${info.holderPid} (${info.holderName})` : `process ${info.holderPid}`;
}
