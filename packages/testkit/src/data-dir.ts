import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** The directories makeDataDir made in this process and not yet removed. */
const made = new Set<string>();

/**
 * A fresh directory under the system temp dir for a controller's or an agent's data. Mode 0755
 * by default: an agent's sandboxed notebook user must be able to pass through it (0700, as
 * mkdtemp makes it, where a test needs no other user). Removed at the end of the test file
 * (temp-dirs-setup.ts) or of the bench that made it.
 */
export function makeDataDir(prefix = "nbf-test-", mode = 0o755): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, mode);
  made.add(dir);
  return dir;
}

/** Removes every directory makeDataDir made in this process; one that resists is left behind. */
export function removeMadeDataDirs(): void {
  for (const dir of made) {
    made.delete(dir);
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // Best effort: a leftover temp directory is not a test's failure.
    }
  }
}
