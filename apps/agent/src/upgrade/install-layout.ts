/**
 * The agent's install directory as the bootstrap lays it out and the launchers read it:
 *
 *   <install>/versions/<version>/   one unpacked artifact each (a bootstrap without a version
 *                                   names it by its sha256)
 *   <install>/current  → versions/…  the one the launcher starts
 *   <install>/previous → versions/…  the one before, kept for a rollback
 *   <install>/upgrade.json          an upgrade not yet confirmed by the new agent (0600)
 *   <install>/rollback.json         written by the launcher when it switched back
 *   <install>/release-key.pub       the controller's release public key (0644)
 *
 * The two JSON files are one line each: the launchers (POSIX sh, PowerShell) read their fields.
 */
import path from "node:path";

export interface InstallLayout {
  installDir: string;
  versionsDir: string;
  current: string;
  previous: string;
  upgradeFile: string;
  rollbackFile: string;
  /** Where a download lands before it is checked. */
  downloadsDir: string;
}

export function installLayout(installDir: string): InstallLayout {
  const at = (name: string) => path.join(installDir, name);
  return {
    installDir,
    versionsDir: at("versions"),
    current: at("current"),
    previous: at("previous"),
    upgradeFile: at("upgrade.json"),
    rollbackFile: at("rollback.json"),
    downloadsDir: at("downloads"),
  };
}

/** `versions/<version>`: what `current` and `previous` point at (relative, so the tree can move). */
export function versionLink(version: string): string {
  return `versions/${version}`;
}

/** What `upgrade.json` holds while the new agent has not confirmed. */
export interface PendingUpgrade {
  commandId: string;
  from: string;
  to: string;
  /** The link targets: `current` goes back to `fromDir` on a rollback. */
  fromDir: string;
  toDir: string;
  startedAt: string;
  deadline: string;
  /** `deadline` in whole seconds since the epoch, for the launchers. */
  deadlineUnix: number;
}

/** What `rollback.json` holds (written by the launcher). */
export interface RollbackRecord {
  from: string;
  to: string;
  reason: string;
  at: string;
}
