/**
 * The package.json of the release tarball: the bundle is the `nbfleet` bin, and what esbuild
 * leaves out of it is an ordinary npm dependency, so `npm install` fetches (or compiles) the
 * native addons for the machine it installs on.
 */
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";

/**
 * Left to npm: native addons (a `.node` binary is built or downloaded for the target machine)
 * and pg. Each becomes a dependency when the controller declares it.
 */
export const RUNTIME_DEPENDENCIES = ["better-sqlite3", "bufferutil", "@node-rs/argon2", "pg"] as const;

/** Optional packages bundled code tries to load and runs without: neither bundled nor installed. */
export const OPTIONAL_EXTERNALS = ["utf-8-validate", "pg-native"] as const;

export const BUNDLE_FILE = "lib/nbfleet.mjs";

export interface ReleaseManifest {
  name: "nbfleet";
  version: string;
  description: string;
  type: "module";
  bin: { nbfleet: string };
  engines: { node: string };
  dependencies: Record<string, string>;
  files: string[];
}

interface PackageJson {
  name?: string;
  version?: string;
  description?: string;
  dependencies?: Record<string, string>;
  engines?: { node?: string };
}

/**
 * Built from the controller's package.json (version, declared dependencies) and the versions
 * installed in the checkout, pinned exactly: the release runs with what the tests ran with.
 */
export async function releaseManifest(controllerDir: string, engines: string): Promise<ReleaseManifest> {
  const controller = await readPackageJson(path.join(controllerDir, "package.json"));
  if (!controller.version) throw releaseError(`${controllerDir}/package.json has no version`);
  const declared = controller.dependencies ?? {};
  const require = createRequire(path.join(controllerDir, "package.json"));
  const dependencies: Record<string, string> = {};
  for (const name of RUNTIME_DEPENDENCIES) {
    if (!(name in declared)) continue;
    const installed = await readPackageJson(require.resolve(`${name}/package.json`)).catch(() => {
      throw releaseError(`${name} is a dependency of the controller but is not installed; run pnpm install`);
    });
    if (!installed.version) throw releaseError(`the installed ${name} has no version`);
    dependencies[name] = installed.version;
  }
  return {
    name: "nbfleet",
    version: controller.version,
    description: "Runs fleets of Jupyter notebook servers on virtual machines (controller and CLI).",
    type: "module",
    bin: { nbfleet: BUNDLE_FILE },
    engines: { node: engines },
    dependencies,
    files: ["lib", "packaging"],
  };
}

async function readPackageJson(file: string): Promise<PackageJson> {
  return JSON.parse(await readFile(file, "utf8")) as PackageJson;
}

export class ReleaseError extends Error {
  readonly code = "NBF_RELEASE_BUILD_FAILED";
}

export function releaseError(message: string): ReleaseError {
  return new ReleaseError(message);
}
