/**
 * Lays out the `nbserver` profile on disk: the config, runtime and data dirs Jupyter is pointed
 * at through JUPYTER_CONFIG_DIR / JUPYTER_RUNTIME_DIR / JUPYTER_DATA_DIR, the notebook directory,
 * the config file (0600, replaced atomically) and the agent-only token (0600).
 *
 * When the server runs as another user (the agent as root), the profile dir and the config dir
 * stay the agent's (0711): the agent writes and re-owns files in them as root, so their user must
 * not be able to put a symbolic link in place of one (it would hand the link's target over).
 * That user owns the files in them it reads (config, token, certificate and key, 0600), the
 * runtime and data dirs, and `nbconfig/` and `lab/` in the config dir, where Jupyter's front ends
 * save their settings; the agent never writes inside those.
 */
import { randomBytes } from "node:crypto";
import { lstat, mkdir, readFile, readdir, rm } from "node:fs/promises";
import path from "node:path";
import type { DataPaths } from "../config/paths.js";
import type { JupyterGeneration } from "../install/detect.js";
import { type FileOwner, writeFileAtomic } from "../util/atomic-write.js";
import { setModeAndOwner } from "../util/owned-file.js";
import { type ConfigOptions, configFileName, renderConfig } from "./config.js";

export type { FileOwner };

/** The config options; without agentToken, the token file's (created when missing) is used. */
export type ProfileOptions = Omit<ConfigOptions, "agentToken"> & { agentToken?: string };

export interface WrittenProfile {
  configFile: string;
  agentToken: string;
}

/** Directories in the config dir that Jupyter's front ends write their settings to (notebook 6, JupyterLab). */
const USER_CONFIG_DIRS = ["nbconfig", "lab"];
const MIGRATED_MARKER = "written by nbfleet-agent: nothing to migrate into this profile\n";

const TOKEN_PATTERN = /^[0-9a-f]{64}$/;

/** The environment that makes Jupyter use this profile and nothing under the user's home. */
export function profileEnv(paths: DataPaths): Record<string, string> {
  return {
    JUPYTER_CONFIG_DIR: paths.configDir,
    JUPYTER_RUNTIME_DIR: paths.runtimeDir,
    JUPYTER_DATA_DIR: paths.jupyterDataDir,
  };
}

export function configFilePath(paths: DataPaths, generation: JupyterGeneration): string {
  return path.join(paths.configDir, configFileName(generation));
}

/** Reads the agent token, creating it (32 random bytes, hex) when missing or malformed. */
export async function ensureAgentToken(paths: DataPaths, owner?: FileOwner | null): Promise<string> {
  await secureProfileDirs(paths, owner);
  let token: string | null = null;
  try {
    const existing = (await readFile(paths.agentTokenFile, "utf8")).trim();
    if (TOKEN_PATTERN.test(existing)) token = existing;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  if (token === null) {
    token = randomBytes(32).toString("hex");
    await writeFileAtomic(paths.agentTokenFile, `${token}\n`, { mode: 0o600, owner });
  } else {
    await setModeAndOwner(paths.agentTokenFile, "file", { mode: 0o600, owner });
  }
  return token;
}

/**
 * Makes the profile and config dirs the agent's own before anything is read or written in them.
 * Before this layout their user owned them, and may have left links in them: each entry of the
 * config dir that is not a plain file or one of the user's dirs goes, links included (removing a
 * link leaves its target alone). Runs before the certificate and the token are looked at.
 */
export async function secureProfileDirs(paths: DataPaths, owner?: FileOwner | null): Promise<void> {
  const shared = owner ? 0o711 : 0o700;
  for (const dir of [paths.profileDir, paths.configDir]) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await setModeAndOwner(dir, "directory", { mode: shared, owner: owner ? agentItself() : null });
  }
  if (!owner) return;
  for (const entry of await readdir(paths.configDir, { withFileTypes: true })) {
    const expected = entry.isFile() || (entry.isDirectory() && USER_CONFIG_DIRS.includes(entry.name));
    if (!expected) await rm(path.join(paths.configDir, entry.name), { recursive: true, force: true });
  }
}

export async function writeProfile(
  paths: DataPaths,
  generation: JupyterGeneration,
  opts: ProfileOptions,
  owner?: FileOwner | null,
): Promise<WrittenProfile> {
  await secureProfileDirs(paths, owner);
  const userDirs = [
    paths.runtimeDir,
    paths.jupyterDataDir,
    ...(owner ? USER_CONFIG_DIRS.map((name) => path.join(paths.configDir, name)) : []),
  ];
  for (const dir of userDirs) await userDir(dir, owner);
  await mkdir(opts.notebookDir, { recursive: true, mode: 0o700 });

  const agentToken = opts.agentToken ?? (await ensureAgentToken(paths, owner));
  const configFile = configFilePath(paths, generation);
  const source = renderConfig(generation, { ...opts, agentToken });
  await writeFileAtomic(configFile, source, { mode: 0o600, owner });

  // Jupyter migrates an IPython 3 setup (~/.ipython, there once a kernel has run) unless this
  // marker is in the config dir; it would write the marker there, which its user cannot.
  await writeFileAtomic(path.join(paths.configDir, "migrated"), MIGRATED_MARKER, { mode: 0o644 });

  // A config of the other generation would be read too (notebook 7 reads both names).
  const stale = configFilePath(paths, generation === "notebook6" ? "server2" : "notebook6");
  await rm(stale, { force: true });

  if (owner) {
    // Only the directory itself: its contents are the user's notebooks, not ours to re-own.
    // A notebook dir that is a link (an operator's choice) is left as it is, as before.
    if ((await lstat(opts.notebookDir)).isDirectory()) {
      await setModeAndOwner(opts.notebookDir, "directory", { owner });
    }
  }
  return { configFile, agentToken };
}

/**
 * A directory of the notebook's user, 0700: the runtime and data dirs, the front ends' settings.
 * One left as a link by an earlier layout is replaced (its target untouched).
 */
async function userDir(dir: string, owner?: FileOwner | null): Promise<void> {
  const found = await lstat(dir).catch(() => null);
  if (found && !found.isDirectory()) await rm(dir, { force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await setModeAndOwner(dir, "directory", { mode: 0o700, owner });
}

function agentItself(): FileOwner {
  return { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 };
}
