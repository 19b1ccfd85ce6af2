/**
 * Native modules the agent loads at run time instead of bundling: esbuild cannot inline a
 * `.node` binary, so each is left external and its installed package directory (with the
 * prebuilt platform package npm chose for this machine) is shipped under `node_modules/`.
 */
import { readFile, realpath } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";

/** Imported by the agent only where needed (`await import(...)`), so the agent runs without them. */
export const NATIVE_PACKAGES = ["@node-rs/argon2", "node-pty"] as const;

/**
 * For packages that build from source, the files the agent needs at run time (paths relative to
 * the package); sources, build intermediates, tests and other platforms' prebuilt binaries stay
 * out (node-pty's install is 60 MB, this is 300 KB). Packages not listed are shipped whole.
 */
export const NATIVE_RUNTIME_FILES: Record<string, (file: string) => boolean> = {
  "node-pty": (file) =>
    file === "package.json" ||
    file === "LICENSE" ||
    (file.startsWith("lib/") && file.endsWith(".js") && !file.endsWith(".test.js")) ||
    file === "build/Release/pty.node" ||
    file === "build/Release/spawn-helper" ||
    file.startsWith(`prebuilds/${process.platform}-${process.arch}/`),
};

/** Dependencies needed only to compile a native package (headers), never at run time. */
const BUILD_ONLY_DEPENDENCIES = new Set(["node-addon-api"]);

export interface NativePackage {
  name: string;
  version: string;
  /** The real directory of the installed package (pnpm links resolved). */
  dir: string;
}

interface PackageJson {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/**
 * The installed native packages reachable from `fromDir`, each with the dependencies and the
 * optional (per-platform) dependencies that are installed next to it. Packages that are not
 * installed are left out: the agent reports a clear error if it ever needs one.
 */
export async function findNativePackages(fromDir: string): Promise<NativePackage[]> {
  const found = new Map<string, NativePackage>();
  const visit = async (name: string, requireFrom: string) => {
    if (found.has(name)) return;
    const manifest = await resolvePackageJson(name, requireFrom);
    if (!manifest) return;
    const pkg = JSON.parse(await readFile(manifest, "utf8")) as PackageJson;
    found.set(name, { name, version: pkg.version, dir: path.dirname(manifest) });
    const next = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})];
    for (const dependency of next) {
      if (!BUILD_ONLY_DEPENDENCIES.has(dependency)) await visit(dependency, manifest);
    }
  };
  for (const name of NATIVE_PACKAGES) await visit(name, path.join(fromDir, "package.json"));
  return [...found.values()].sort((a, b) => a.name.localeCompare(b.name));
}

async function resolvePackageJson(name: string, requireFrom: string): Promise<string | undefined> {
  try {
    return await realpath(createRequire(requireFrom).resolve(`${name}/package.json`));
  } catch {
    return undefined;
  }
}
