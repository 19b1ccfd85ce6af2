/**
 * Finds an installed Jupyter and tells which generation it is, by asking the Python that the
 * `jupyter` script really runs with (its shebang), never whatever `python3` is first on PATH.
 *
 * Order: the agent's venv, then /usr/bin (the distribution's packages), then PATH.
 */
import { constants } from "node:fs";
import { access, open, realpath } from "node:fs/promises";
import path from "node:path";
import { type CommandRunner, spawnRunner } from "./command-runner.js";

import type { JupyterGeneration } from "@nbfleet/shared";

export type { JupyterGeneration };

export interface JupyterInstallation {
  generation: JupyterGeneration;
  /** The version that decided the generation: notebook's if installed, else jupyter_server's. */
  version: string;
  notebookVersion: string | null;
  jupyterServerVersion: string | null;
  jupyterPath: string;
  /** The interpreter of that installation. */
  python: string;
  /** argv that starts the server (config comes from JUPYTER_CONFIG_DIR). */
  launch: string[];
}

export interface DetectOptions {
  venvDir?: string | null;
  env?: NodeJS.ProcessEnv;
  platform?: NodeJS.Platform;
  runner?: CommandRunner;
}

const VERSION_SCRIPT = `
import json
out = {}
for name in ("notebook", "jupyter_server"):
    try:
        module = __import__(name)
        out[name] = str(getattr(module, "__version__", "")) or None
    except Exception:
        out[name] = None
print(json.dumps(out))
`;

interface Candidate {
  jupyterPath: string;
  /** Used when the script has no readable shebang (e.g. a Windows .exe launcher). */
  siblingPython: string[];
}

async function isExecutable(file: string): Promise<boolean> {
  try {
    await access(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function candidates(options: Required<Pick<DetectOptions, "env" | "platform">> & DetectOptions): Candidate[] {
  const windows = options.platform === "win32";
  const p = windows ? path.win32 : path.posix;
  const exe = windows ? "jupyter.exe" : "jupyter";
  const pythons = windows ? ["python.exe"] : ["python3", "python"];
  const out: Candidate[] = [];
  const add = (dir: string) =>
    out.push({ jupyterPath: p.join(dir, exe), siblingPython: pythons.map((name) => p.join(dir, name)) });
  if (options.venvDir) add(p.join(options.venvDir, windows ? "Scripts" : "bin"));
  if (!windows) add("/usr/bin");
  const pathVar = options.env.PATH ?? options.env.Path ?? "";
  for (const dir of pathVar.split(windows ? ";" : ":")) if (dir) add(dir);
  return out;
}

/** The interpreter named by a `#!` line; `env` forms are resolved on PATH like the kernel would. */
export async function shebangInterpreter(file: string, env: NodeJS.ProcessEnv): Promise<string | null> {
  let head: string;
  try {
    const handle = await open(file, "r");
    try {
      const buffer = Buffer.alloc(512);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      head = buffer.subarray(0, bytesRead).toString("utf8");
    } finally {
      await handle.close();
    }
  } catch {
    return null;
  }
  if (!head.startsWith("#!")) return null;
  const words = head.slice(2).split(/\r?\n/)[0]!.trim().split(/\s+/);
  const [interpreter, ...rest] = words;
  if (!interpreter) return null;
  if (path.posix.basename(interpreter) !== "env") return interpreter;
  const program = rest.find((word) => !word.startsWith("-"));
  if (!program) return null;
  if (program.includes("/")) return program;
  for (const dir of (env.PATH ?? "").split(":")) {
    if (!dir) continue;
    const full = path.posix.join(dir, program);
    if (await isExecutable(full)) return full;
  }
  return null;
}

export interface ModuleVersions {
  notebook: string | null;
  jupyter_server: string | null;
}

/** Runs the tiny version script with `python`; null when it cannot run or prints nonsense. */
export async function readModuleVersions(
  python: string,
  runner: CommandRunner = spawnRunner,
): Promise<ModuleVersions | null> {
  const result = await runner([python, "-c", VERSION_SCRIPT], { timeoutMs: 60_000 });
  if (result.code !== 0) return null;
  const lastLine = result.stdout.trim().split("\n").at(-1) ?? "";
  try {
    const parsed = JSON.parse(lastLine) as Partial<ModuleVersions>;
    return {
      notebook: typeof parsed.notebook === "string" ? parsed.notebook : null,
      jupyter_server: typeof parsed.jupyter_server === "string" ? parsed.jupyter_server : null,
    };
  } catch {
    return null;
  }
}

function majorOf(version: string): number {
  const major = Number.parseInt(version, 10);
  return Number.isNaN(major) ? 0 : major;
}

/** Pure: which generation and launch command a set of module versions means. */
export function classify(
  jupyterPath: string,
  versions: ModuleVersions,
): Pick<JupyterInstallation, "generation" | "version" | "launch"> | null {
  if (versions.notebook) {
    const generation = majorOf(versions.notebook) < 7 ? "notebook6" : "server2";
    return { generation, version: versions.notebook, launch: [jupyterPath, "notebook"] };
  }
  if (versions.jupyter_server) {
    return { generation: "server2", version: versions.jupyter_server, launch: [jupyterPath, "server"] };
  }
  return null;
}

export async function detectJupyter(options: DetectOptions = {}): Promise<JupyterInstallation | null> {
  const env = options.env ?? process.env;
  const platform = options.platform ?? process.platform;
  const runner = options.runner ?? spawnRunner;
  const seen = new Set<string>();
  for (const candidate of candidates({ ...options, env, platform })) {
    if (!(await isExecutable(candidate.jupyterPath))) continue;
    // /bin/jupyter and /usr/bin/jupyter are the same file on merged-/usr systems.
    const real = await realpath(candidate.jupyterPath).catch(() => candidate.jupyterPath);
    if (seen.has(real)) continue;
    seen.add(real);
    // The shebang is what `jupyter` really runs with; siblings only stand in when there is none.
    const fromShebang = await shebangInterpreter(candidate.jupyterPath, env);
    const pythons: string[] = [];
    if (fromShebang) pythons.push(fromShebang);
    else
      for (const sibling of candidate.siblingPython) if (await isExecutable(sibling)) pythons.push(sibling);
    for (const python of pythons) {
      const versions = await readModuleVersions(python, runner);
      const found = versions && classify(candidate.jupyterPath, versions);
      if (found && versions) {
        return {
          ...found,
          notebookVersion: versions.notebook,
          jupyterServerVersion: versions.jupyter_server,
          jupyterPath: candidate.jupyterPath,
          python,
        };
      }
    }
  }
  return null;
}
