/**
 * `pnpm start` runs this first: builds the web console (apps/console/dist) when it is missing or
 * older than anything it is built from (its sources and the shared API shapes it imports).
 * `nbfleet server` never needs it: without a build the controller answers / with how to build.
 */
import { execFile } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const consoleDir = path.join(root, "apps", "console");
const builtIndex = path.join(consoleDir, "dist", "index.html");
const SOURCES = [
  path.join(consoleDir, "src"),
  path.join(consoleDir, "public"),
  path.join(consoleDir, "scripts"),
  path.join(consoleDir, "index.html"),
  path.join(consoleDir, "vite.config.ts"),
  path.join(consoleDir, "package.json"),
  path.join(root, "packages", "shared", "src"),
];
const BUILD = ["--filter", "@nbfleet/console", "build"];

/** The newest modification time (ms) under these files and folders; 0 when none exists. */
function newestMtime(paths: string[]): number {
  let newest = 0;
  for (const p of paths) {
    if (!existsSync(p)) continue;
    const stat = statSync(p);
    if (stat.isDirectory()) {
      const children = readdirSync(p)
        .filter((name) => name !== "node_modules")
        .map((name) => path.join(p, name));
      newest = Math.max(newest, newestMtime(children));
    } else newest = Math.max(newest, stat.mtimeMs);
  }
  return newest;
}

/** Why the console needs building, or null when its build is current. */
function staleReason(): string | null {
  if (!existsSync(builtIndex)) return "apps/console/dist is missing";
  return statSync(builtIndex).mtimeMs < newestMtime(SOURCES)
    ? "apps/console/dist is older than its sources"
    : null;
}

async function main(): Promise<void> {
  const reason = staleReason();
  if (!reason) return;
  process.stdout.write(`building the web console (${reason})…\n`);
  try {
    await promisify(execFile)("pnpm", ["--silent", ...BUILD], { cwd: root, maxBuffer: 64 * 1024 * 1024 });
  } catch (error) {
    const { stdout = "", stderr = "" } = error as { stdout?: string; stderr?: string };
    process.stderr.write(`${stdout}${stderr}\n`);
    process.stderr.write(
      `the web console did not build (pnpm ${BUILD.join(" ")} failed, output above); ` +
        "'pnpm nbfleet up' starts the controller without it\n",
    );
    process.exit(1);
  }
}

await main();
