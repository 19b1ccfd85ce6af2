/** Where the repository's entry points are, for tests that start them as child processes. */
import path from "node:path";
import { fileURLToPath } from "node:url";

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
export const tsxLoader = path.join(repoRoot, "node_modules/tsx/dist/loader.mjs");
export const agentMain = path.join(repoRoot, "apps/agent/src/cli/main.ts");
export const controllerMain = path.join(repoRoot, "apps/controller/src/cli/main.ts");
