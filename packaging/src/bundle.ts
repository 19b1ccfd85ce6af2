/**
 * Bundles the controller CLI into ESM for Node 20 with esbuild, at build time: the entry file and,
 * beside it, the chunks it imports only when a command needs them (`server` and `up` load the
 * whole controller; `nbfleet vm ls` as one file loaded it too, 0.74 s and 122 MB). Two
 * modules are swapped for release ones: the agent artifact is the one shipped with the release
 * (not built from sources), and esbuild itself (which the checkout's artifact builder imports)
 * is a stub, so the release carries no esbuild. Files the code reads beside itself
 * (`new URL("./file", import.meta.url)`) are found while bundling and copied next to the bundle.
 */
import { chmod, copyFile, readFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { type BuildFailure, type Loader, type Plugin, build } from "esbuild";
import { OPTIONAL_EXTERNALS, RUNTIME_DEPENDENCIES, releaseError } from "./release-manifest.js";

const NODE_TARGET = "node20";
const RUNTIME_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), "runtime");
export const SHIPPED_ARTIFACT_MODULE = path.join(RUNTIME_DIR, "shipped-agent-artifact.ts");
const NO_ESBUILD_MODULE = path.join(RUNTIME_DIR, "no-esbuild.ts");

// CJS dependencies bundled into ESM still use `require`, `__filename` and `__dirname`.
const BANNER = [
  'import { createRequire as __nbfleetCreateRequire } from "node:module";',
  'import { fileURLToPath as __nbfleetFileURLToPath } from "node:url";',
  'import { dirname as __nbfleetDirname } from "node:path";',
  "const require = __nbfleetCreateRequire(import.meta.url);",
  "const __filename = __nbfleetFileURLToPath(import.meta.url);",
  "const __dirname = __nbfleetDirname(__filename);",
].join("\n");

// `new URL("./name", import.meta.url)`: a file read from beside the module at run time.
const BESIDE_MODULE = /new\s+URL\(\s*(["'`])([^"'`]+)\1\s*,\s*import\.meta\.url\s*\)/g;

export interface BundleResult {
  /** Absolute paths of every file that went into the bundle. */
  inputs: string[];
  /** Files copied beside the bundle (their names there). */
  assets: string[];
  warnings: string[];
}

export async function bundleController(controllerDir: string, outfile: string): Promise<BundleResult> {
  const entry = path.join(controllerDir, "src", "cli", "main.ts");
  const checkoutArtifactModule = path.join(controllerDir, "src", "cli", "agent-artifact.ts");
  const assets = new Map<string, string>();
  let swapped = false;

  const release: Plugin = {
    name: "nbfleet-release",
    setup(b) {
      b.onResolve({ filter: /^esbuild$/ }, () => ({ path: NO_ESBUILD_MODULE }));
      b.onResolve({ filter: /(^|\/)agent-artifact\.js$/ }, (args) => {
        const target = path.resolve(args.resolveDir, args.path).replace(/\.js$/, ".ts");
        if (target !== checkoutArtifactModule) return undefined;
        swapped = true;
        return { path: SHIPPED_ARTIFACT_MODULE };
      });
      b.onLoad({ filter: /\.[mc]?[jt]s$/ }, async (args) => {
        const contents = await readFile(args.path, "utf8");
        for (const match of contents.matchAll(BESIDE_MODULE)) {
          addAsset(assets, args.path, match[2]!);
        }
        return { contents, loader: loaderFor(args.path) };
      });
    },
  };

  let result: Awaited<ReturnType<typeof build>>;
  try {
    result = await build({
      entryPoints: [entry],
      outdir: path.dirname(outfile),
      entryNames: path.basename(outfile, ".mjs"),
      // Beside the entry: the files modules read beside themselves are found from any chunk.
      chunkNames: "chunk-[hash]",
      outExtension: { ".js": ".mjs" },
      splitting: true,
      absWorkingDir: controllerDir,
      bundle: true,
      platform: "node",
      format: "esm",
      target: NODE_TARGET,
      external: [...RUNTIME_DEPENDENCIES, ...OPTIONAL_EXTERNALS],
      // Readable: an operator's stack traces should name the controller's own functions.
      minify: false,
      keepNames: true,
      legalComments: "none",
      banner: { js: BANNER },
      metafile: true,
      logLevel: "silent",
      plugins: [release],
    });
  } catch (error) {
    const first = (error as Partial<BuildFailure>).errors?.[0];
    const where = first?.location ? ` at ${first.location.file}:${first.location.line}` : "";
    throw releaseError(`esbuild could not bundle the controller (${entry}): ${first?.text ?? error}${where}`);
  }
  if (!swapped) {
    throw releaseError(
      `nothing imported ${checkoutArtifactModule}: the release could not put its shipped agent artifact in its place`,
    );
  }
  await chmod(outfile, 0o755);
  const outDir = path.dirname(outfile);
  for (const [name, source] of assets) await copyFile(source, path.join(outDir, name));
  return {
    inputs: Object.keys(result.metafile?.inputs ?? {}).map((input) => path.resolve(controllerDir, input)),
    assets: [...assets.keys()].sort(),
    warnings: result.warnings.map(
      (w) => `${w.text}${w.location ? ` (${w.location.file}:${w.location.line})` : ""}`,
    ),
  };
}

/** An asset must sit beside its module and have a name no other asset has: all land in one folder. */
function addAsset(assets: Map<string, string>, module: string, relative: string): void {
  if (!/^\.\/[^/\\]+$/.test(relative)) {
    throw releaseError(
      `${module} reads ${relative} relative to itself; the release only ships files beside their module ("./name")`,
    );
  }
  const name = relative.slice(2);
  const source = path.join(path.dirname(module), name);
  const earlier = assets.get(name);
  if (earlier && earlier !== source) {
    throw releaseError(`two modules read a file named ${name} beside them (${earlier} and ${source})`);
  }
  assets.set(name, source);
}

function loaderFor(file: string): Loader {
  return /\.[mc]?ts$/.test(file) ? "ts" : "js";
}
