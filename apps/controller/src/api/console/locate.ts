/**
 * Where the built web console is: the configured directory, else `console/` beside the running
 * module (the release puts it next to its bundle, lib/console/), else the checkout's
 * apps/console/dist. A directory counts only with its index.html in it.
 */
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const CONSOLE_BUILD_COMMAND = "pnpm --filter @nbfleet/console build";

export function consoleCandidates(configured: string | null): string[] {
  if (configured) return [path.resolve(configured)];
  const here = path.dirname(fileURLToPath(import.meta.url));
  return [path.join(here, "console"), path.resolve(here, "..", "..", "..", "..", "console", "dist")];
}

/** The first candidate holding index.html, or undefined. */
export function locateConsole(configured: string | null): string | undefined {
  return consoleCandidates(configured).find((dir) => existsSync(path.join(dir, "index.html")));
}
