/**
 * Builds the agent artifact the controller serves at `GET /v1/agent/artifact`: the agent
 * bundled by esbuild into one ESM file for Node 20 (`nbfleet-agent.mjs`), a `manifest.json`,
 * and the native packages it loads lazily under `node_modules/`, packed as
 * `nbfleet-agent.tar.gz`. A guest runs it with plain `node nbfleet-agent.mjs`. The build is
 * cached in `outDir`: it reruns only when a bundled source or packed native file changed.
 */
import { createHash } from "node:crypto";
import { access, cp, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import { AGENT_VERSION } from "@nbfleet/shared";
import { isArtifactVersion } from "@nbfleet/shared/artifact-signature";
import { type BuildFailure, type Loader, type Plugin, build, version as esbuildVersion } from "esbuild";
import { ScriptsError } from "../errors.js";
import {
  type BuildRecord,
  hashInputs,
  isFresh,
  readBuildRecord,
  sha256File,
  writeBuildRecord,
} from "./cache.js";
import { NATIVE_PACKAGES, NATIVE_RUNTIME_FILES, type NativePackage, findNativePackages } from "./native.js";
import { packDirectory } from "./pack.js";

export const ARTIFACT_FILE = "nbfleet-agent.tar.gz";
export const AGENT_BUNDLE_FILE = "nbfleet-agent.mjs";
const BUILD_RECORD_FILE = "nbfleet-agent.build.json";
/** Bump when the bundle or the tarball layout changes in a way the inputs do not show. */
const RECIPE = 4;
const NODE_TARGET = "node20";
/** apps/agent/src/version.ts's build-time constant. */
const AGENT_VERSION_DEFINE = "__NBFLEET_AGENT_VERSION__";

// CJS dependencies bundled into ESM still call `require` for Node built-ins.
const REQUIRE_SHIM =
  'import { createRequire as __nbfleetCreateRequire } from "node:module";\n' +
  "const require = __nbfleetCreateRequire(import.meta.url);";

export interface BuildAgentArtifactOptions {
  /** Where the artifact and its build record live (created if missing). */
  outDir: string;
  /** The agent package directory; defaults to the workspace's `@nbfleet/agent`. */
  agentDir?: string;
  /** Rebuild even when the cached artifact is current. */
  force?: boolean;
  /**
   * The version baked into the bundle (the agent reports it) and written to `manifest.json`;
   * default AGENT_VERSION. Must match ARTIFACT_VERSION_PATTERN.
   */
  version?: string;
}

export interface AgentArtifact {
  /** Absolute path of `nbfleet-agent.tar.gz`. */
  file: string;
  /** Lower-case hex SHA-256 of `file`. */
  sha256: string;
  bytes: number;
  /** The version built (`options.version`, default `AGENT_VERSION`); builds of one version differ by `sha256`. */
  version: string;
  /** True when the artifact was already current and nothing was rebuilt. */
  cached: boolean;
}

/** What `manifest.json` inside the tarball says. */
export interface ArtifactManifest {
  name: "nbfleet-agent";
  version: string;
  entry: typeof AGENT_BUNDLE_FILE;
  node: string;
  platform: string;
  native: Array<{ name: string; version: string }>;
}

export async function buildAgentArtifact(options: BuildAgentArtifactOptions): Promise<AgentArtifact> {
  const outDir = path.resolve(options.outDir);
  const version = options.version ?? AGENT_VERSION;
  if (!isArtifactVersion(version)) {
    throw buildFailed(
      `the version ${JSON.stringify(version)} is not MAJOR.MINOR.PATCH with an optional -prerelease or +build tail`,
      { version },
    );
  }
  const agentDir = path.resolve(options.agentDir ?? defaultAgentDir());
  const file = path.join(outDir, ARTIFACT_FILE);
  const recordFile = path.join(outDir, BUILD_RECORD_FILE);
  const key = JSON.stringify({
    recipe: RECIPE,
    esbuild: esbuildVersion,
    target: NODE_TARGET,
    platform: `${process.platform}-${process.arch}`,
    version,
    agentDir,
  });

  const previous = options.force ? undefined : await readBuildRecord(recordFile);
  if (previous && (await isFresh(previous, key, file))) {
    return { file, sha256: previous.sha256, bytes: previous.bytes, version: previous.version, cached: true };
  }

  await mkdir(outDir, { recursive: true });
  const staging = await mkdtemp(path.join(outDir, ".staging-"));
  try {
    const bundled = await bundleAgent(agentDir, path.join(staging, AGENT_BUNDLE_FILE), version);
    const natives = await findNativePackages(agentDir);
    const nativeFiles = await stageNatives(natives, staging);
    const manifest: ArtifactManifest = {
      name: "nbfleet-agent",
      version,
      entry: AGENT_BUNDLE_FILE,
      node: ">=20",
      platform: `${process.platform}-${process.arch}`,
      native: natives.map(({ name, version }) => ({ name, version })),
    };
    await writeFile(path.join(staging, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`);

    const packed = path.join(staging, ARTIFACT_FILE);
    await packDirectory(staging, packed).catch((error: unknown) => {
      throw buildFailed(`packing ${ARTIFACT_FILE} failed: ${messageOf(error)}`, { outDir });
    });
    const inputs = { ...(await hashInputs([...nativeFiles, ...(await lockfiles(agentDir))])), ...bundled };
    const sha256 = await sha256File(packed);
    const { size: bytes } = await stat(packed);
    await rename(packed, file);
    const record: BuildRecord = { key, version, sha256, bytes, inputs };
    await writeBuildRecord(recordFile, record);
    return { file, sha256, bytes, version, cached: false };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}

/**
 * Bundles the agent CLI; returns the sha256 of every file esbuild read. Source files are read
 * (and hashed) by the plugin below, so the hashes are of exactly the bytes that were bundled,
 * even if a file is being edited while the controller starts.
 */
async function bundleAgent(
  agentDir: string,
  outfile: string,
  version: string,
): Promise<Record<string, string>> {
  const entry = path.join(agentDir, "src", "cli", "main.ts");
  const hashes: Record<string, string> = {};
  const hashWhatIsLoaded: Plugin = {
    name: "nbfleet-hash-inputs",
    setup(build) {
      build.onLoad({ filter: /\.([mc]?[jt]s|json)$/ }, async (args) => {
        if (args.namespace !== "file") return undefined;
        const contents = await readFile(args.path);
        hashes[args.path] = createHash("sha256").update(contents).digest("hex");
        return { contents, loader: loaderFor(args.path) };
      });
    },
  };
  try {
    const result = await build({
      entryPoints: [entry],
      outfile,
      absWorkingDir: agentDir,
      bundle: true,
      platform: "node",
      format: "esm",
      target: NODE_TARGET,
      // ws's optional native speed-ups stay out: ws runs without them, and the agent's traffic is light.
      external: [...NATIVE_PACKAGES, "bufferutil", "utf-8-validate"],
      // V8 keeps a module's whole source for as long as the agent runs (functions compile lazily
      // from it): minified and pure ASCII (a one-byte string), it is a fraction of the readable one.
      minify: true,
      charset: "ascii",
      banner: { js: REQUIRE_SHIM },
      // What apps/agent/src/version.ts reports.
      define: { [AGENT_VERSION_DEFINE]: JSON.stringify(version) },
      metafile: true,
      logLevel: "silent",
      plugins: [hashWhatIsLoaded],
    });
    const inputs = Object.keys(result.metafile.inputs).map((input) => path.resolve(agentDir, input));
    const others = await hashInputs(inputs.filter((input) => !(input in hashes)));
    return { ...hashes, ...others };
  } catch (error) {
    const failure = error as Partial<BuildFailure>;
    const first = failure.errors?.[0];
    const where = first?.location ? ` at ${first.location.file}:${first.location.line}` : "";
    throw buildFailed(
      `esbuild could not bundle the agent (${entry}): ${first?.text ?? messageOf(error)}${where}`,
      { entry },
    );
  }
}

function loaderFor(file: string): Loader {
  if (file.endsWith(".json")) return "json";
  return /\.[mc]?ts$/.test(file) ? "ts" : "js";
}

/** Copies each native package to `staging/node_modules/<name>`; returns the source files copied. */
async function stageNatives(natives: NativePackage[], staging: string): Promise<string[]> {
  const copied: string[] = [];
  for (const native of natives) {
    await cp(native.dir, path.join(staging, "node_modules", native.name), {
      recursive: true,
      dereference: true,
      filter: async (source) => {
        if (path.basename(source) === "node_modules") return false;
        const wanted = NATIVE_RUNTIME_FILES[native.name];
        if (wanted && !(await stat(source)).isDirectory()) {
          if (!wanted(path.relative(native.dir, source).split(path.sep).join("/"))) return false;
        }
        copied.push(source);
        return true;
      },
    });
  }
  const files = await Promise.all(
    copied.map(async (source) => ((await stat(source)).isFile() ? source : undefined)),
  );
  return files.filter((f): f is string => f !== undefined);
}

/** The agent's package.json and the workspace lockfile: a dependency change shows there first. */
async function lockfiles(agentDir: string): Promise<string[]> {
  const found = [path.join(agentDir, "package.json")];
  for (let dir = agentDir; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, "pnpm-lock.yaml");
    if (
      await access(candidate).then(
        () => true,
        () => false,
      )
    ) {
      found.push(candidate);
      break;
    }
    if (path.dirname(dir) === dir) break;
  }
  return found;
}

function defaultAgentDir(): string {
  // "@nbfleet/agent" resolves to <agentDir>/src/index.ts.
  const index = createRequire(import.meta.url).resolve("@nbfleet/agent");
  return path.dirname(path.dirname(index));
}

function buildFailed(message: string, details: Record<string, unknown>): ScriptsError {
  return new ScriptsError("NBF_ARTIFACT_BUILD_FAILED", message, details);
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
