/**
 * Debian's Chromium with a HOME of its own whose NSS store trusts a given root as a CA (how a
 * machine trusts a public CA, here pebble's): certificate checks stay on, nothing skips them.
 * Names can be mapped to addresses, as public DNS maps a VM's name to it.
 */
import { execFile } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { type Browser, chromium } from "playwright-core";
import { CHROMIUM_ARGS, CHROMIUM_PATH } from "./chromium.js";

const run = promisify(execFile);

export interface TrustingChromiumOptions {
  /** A directory of its own for this browser's HOME (created). */
  home: string;
  /** The root to trust (PEM), or null for an empty store. */
  rootPem: string | null;
  /** Host names resolved to 127.0.0.1. */
  loopbackNames?: string[];
}

export async function launchChromiumTrusting(options: TrustingChromiumOptions): Promise<Browser> {
  const nssdb = path.join(options.home, ".pki", "nssdb");
  mkdirSync(nssdb, { recursive: true });
  try {
    await run("certutil", ["-N", "-d", `sql:${nssdb}`, "--empty-password"]);
    if (options.rootPem) {
      const file = path.join(options.home, "trusted-root.pem");
      writeFileSync(file, options.rootPem);
      await run("certutil", ["-A", "-d", `sql:${nssdb}`, "-n", "test root", "-t", "C,,", "-i", file]);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") {
      throw new Error(
        "certutil is missing (Debian's libnss3-tools): run tools/ensure-system-packages.sh as root",
      );
    }
    throw error;
  }
  const rules = (options.loopbackNames ?? []).map((name) => `MAP ${name} 127.0.0.1`).join(",");
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [...CHROMIUM_ARGS, ...(rules ? [`--host-resolver-rules=${rules}`] : [])],
    env: { ...process.env, HOME: options.home },
    timeout: 60_000,
  });
}
