/**
 * Builds the controller release, `nbfleet-<version>.tgz`: an npm package holding the bundled
 * CLI (lib/nbfleet.mjs and the files it reads beside itself), the prebuilt agent artifact
 * (lib/agent/), the web console's build (lib/console/, where the controller looks beside its
 * bundle), the systemd unit and environment example (packaging/), and a package.json whose
 * dependencies are the native addons and pg, which `npm install` gets for the target machine.
 */
import { execFile } from "node:child_process";
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import { ARTIFACT_FILE, buildAgentArtifact } from "@nbfleet/scripts";
import { bundleController } from "./bundle.js";
import { BUNDLE_FILE, releaseError, releaseManifest } from "./release-manifest.js";
import {
  SHIPPED_ARTIFACT_DIR,
  SHIPPED_ARTIFACT_RECORD,
  type ShippedArtifactRecord,
} from "./runtime/shipped-agent-artifact.js";

const run = promisify(execFile);

/** Shipped for the operator beside the program (see the package's README). */
export const PACKAGING_FILES = ["nbfleet.service", "nbfleet.env.example"] as const;

/** Packages a release must never carry: they would mean building or transpiling at run time. */
const BUILD_TOOLS = /\/node_modules\/(\.pnpm\/[^/]+\/node_modules\/)?(tsx|esbuild|@esbuild)\//;

export interface BuildReleaseOptions {
  /** The checkout (holds apps/controller and packaging/). */
  repoRoot: string;
  /** Where nbfleet-<version>.tgz is written (created if missing). */
  outDir: string;
}

export interface Release {
  file: string;
  bytes: number;
  version: string;
  dependencies: Record<string, string>;
  agent: ShippedArtifactRecord;
  assets: string[];
  warnings: string[];
}

export async function buildRelease(options: BuildReleaseOptions): Promise<Release> {
  const repoRoot = path.resolve(options.repoRoot);
  const outDir = path.resolve(options.outDir);
  const controllerDir = path.join(repoRoot, "apps", "controller");
  const root = JSON.parse(await readFile(path.join(repoRoot, "package.json"), "utf8")) as {
    engines?: { node?: string };
  };
  const manifest = await releaseManifest(controllerDir, root.engines?.node ?? ">=20");
  await mkdir(outDir, { recursive: true });
  const staging = await mkdtemp(path.join(outDir, ".staging-"));
  try {
    const bundle = await bundleController(controllerDir, path.join(staging, BUNDLE_FILE));
    const carried = bundle.inputs.filter((input) => BUILD_TOOLS.test(input));
    if (carried.length > 0) throw releaseError(`the bundle would carry build tools: ${carried.join(", ")}`);

    // Cached beside the release: a rebuild with unchanged agent sources reuses it.
    const artifact = await buildAgentArtifact({ outDir: path.join(outDir, ".agent-artifact") });
    const agentDir = path.join(staging, path.dirname(BUNDLE_FILE), SHIPPED_ARTIFACT_DIR);
    await mkdir(agentDir, { recursive: true });
    await copyFile(artifact.file, path.join(agentDir, ARTIFACT_FILE));
    const agent: ShippedArtifactRecord = {
      file: ARTIFACT_FILE,
      sha256: artifact.sha256,
      bytes: artifact.bytes,
      version: artifact.version,
    };
    await writeFile(path.join(agentDir, SHIPPED_ARTIFACT_RECORD), `${JSON.stringify(agent, null, 2)}\n`);

    // Built fresh from the checkout's sources: a stale dist must not ship.
    await run("pnpm", ["--silent", "--filter", "@nbfleet/console", "build"], {
      cwd: repoRoot,
      maxBuffer: 64 * 1024 * 1024,
    }).catch((error: { stdout?: string; stderr?: string; message: string }) => {
      throw releaseError(`the web console did not build: ${error.stderr || error.stdout || error.message}`);
    });
    await cp(
      path.join(repoRoot, "apps", "console", "dist"),
      path.join(staging, path.dirname(BUNDLE_FILE), "console"),
      {
        recursive: true,
      },
    );

    await mkdir(path.join(staging, "packaging"));
    for (const name of PACKAGING_FILES) {
      await copyFile(path.join(repoRoot, "packaging", name), path.join(staging, "packaging", name));
    }
    await writeFile(path.join(staging, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);

    const file = path.join(outDir, `${manifest.name}-${manifest.version}.tgz`);
    await rm(file, { force: true });
    await run("npm", ["pack", "--silent", "--pack-destination", outDir], { cwd: staging }).catch(
      (error: { stderr?: string; message: string }) => {
        throw releaseError(`npm pack failed: ${error.stderr || error.message}`);
      },
    );
    const { size: bytes } = await stat(file).catch(() => {
      throw releaseError(`npm pack did not write ${file}`);
    });
    return {
      file,
      bytes,
      version: manifest.version,
      dependencies: manifest.dependencies,
      agent,
      assets: bundle.assets,
      warnings: bundle.warnings,
    };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
