import { chmodSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/**
 * A fresh directory under the system temp dir for a controller's or an agent's data. Mode 0755:
 * an agent's sandboxed notebook user must be able to pass through it.
 */
export function makeDataDir(prefix = "nbf-test-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}
