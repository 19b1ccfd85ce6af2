/**
 * The web console's build for browser tests and the bench: built again when apps/console/dist
 * is missing or older than any of its sources (the console is edited while tests run).
 */
import { execFileSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import path from "node:path";
import { repoRoot } from "./repo.js";

export const consoleDir = path.join(repoRoot, "apps/console");

export function ensureConsoleBuilt(): void {
  const built = mtime(path.join(consoleDir, "dist/index.html"));
  const sources = ["src", "index.html", "vite.config.ts", "package.json", "public"].map((p) =>
    newest(path.join(consoleDir, p)),
  );
  if (built !== null && sources.every((t) => t === null || t <= built)) return;
  execFileSync("pnpm", ["--filter", "@nbfleet/console", "build"], { cwd: repoRoot, stdio: "inherit" });
}

function mtime(file: string): number | null {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return null;
  }
}

/** The newest modification time in a file or directory tree (null when absent). */
function newest(at: string): number | null {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(at);
  } catch {
    return null;
  }
  if (!stat.isDirectory()) return stat.mtimeMs;
  let max = stat.mtimeMs;
  for (const entry of readdirSync(at)) max = Math.max(max, newest(path.join(at, entry)) ?? 0);
  return max;
}
