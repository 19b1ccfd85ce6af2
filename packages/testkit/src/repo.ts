/** Where the repository's entry points are, for tests that start them as child processes. */
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const tsxLoader = path.join(repoRoot, "node_modules/tsx/dist/loader.mjs");
export const agentMain = path.join(repoRoot, "apps/agent/src/cli/main.ts");
export const controllerMain = path.join(repoRoot, "apps/controller/src/cli/main.ts");
/** The run's bundle of the CLI (cli-bundle.ts), in node_modules/.cache: nothing in the tree or /tmp. */
export const CLI_BUNDLE_DIR = path.join(repoRoot, "node_modules", ".cache", "nbfleet-test-cli");
export const CLI_BUNDLE_ENTRY = path.join(CLI_BUNDLE_DIR, "main.js");

/** The run's CLI bundle, which vitest's global setup (or the bench) builds first; throws when it is missing. */
export function bundledCli(): string {
  if (!existsSync(CLI_BUNDLE_ENTRY)) {
    throw new Error(
      `no CLI bundle at ${CLI_BUNDLE_ENTRY}: vitest's global setup builds it (packages/testkit/src/cli-global-setup.ts)`,
    );
  }
  return CLI_BUNDLE_ENTRY;
}
