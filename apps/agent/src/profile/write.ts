/**
 * Lays out the `nbserver` profile on disk: the config, runtime and data dirs Jupyter is pointed
 * at through JUPYTER_CONFIG_DIR / JUPYTER_RUNTIME_DIR / JUPYTER_DATA_DIR, the notebook directory,
 * the config file (0600, replaced atomically) and the agent-only token (0600). When the server
 * runs as another user, that user owns all of it.
 */
import { randomBytes } from "node:crypto";
import { chmod, chown, lstat, mkdir, readFile, readdir, rm } from "node:fs/promises";
import path from "node:path";
import type { DataPaths } from "../config/paths.js";
import type { JupyterGeneration } from "../install/detect.js";
import { type FileOwner, writeFileAtomic } from "../util/atomic-write.js";
import { type ConfigOptions, configFileName, renderConfig } from "./config.js";

export type { FileOwner };

/** The config options; without agentToken, the token file's (created when missing) is used. */
export type ProfileOptions = Omit<ConfigOptions, "agentToken"> & { agentToken?: string };

export interface WrittenProfile {
  configFile: string;
  agentToken: string;
}

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
  await mkdir(paths.configDir, { recursive: true, mode: 0o700 });
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
    await chmod(paths.agentTokenFile, 0o600);
    if (owner) await chown(paths.agentTokenFile, owner.uid, owner.gid);
  }
  return token;
}

/** chown -R without following symlinks, so a link planted in the profile cannot redirect it. */
async function chownTree(dir: string, owner: FileOwner): Promise<void> {
  await chown(dir, owner.uid, owner.gid);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await chownTree(full, owner);
    else if (!entry.isSymbolicLink()) await chown(full, owner.uid, owner.gid);
  }
}

export async function writeProfile(
  paths: DataPaths,
  generation: JupyterGeneration,
  opts: ProfileOptions,
  owner?: FileOwner | null,
): Promise<WrittenProfile> {
  for (const dir of [paths.profileDir, paths.configDir, paths.runtimeDir, paths.jupyterDataDir]) {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await chmod(dir, 0o700);
  }
  await mkdir(opts.notebookDir, { recursive: true, mode: 0o700 });

  const agentToken = opts.agentToken ?? (await ensureAgentToken(paths, owner));
  const configFile = configFilePath(paths, generation);
  const source = renderConfig(generation, { ...opts, agentToken });
  await writeFileAtomic(configFile, source, { mode: 0o600, owner });

  // A config of the other generation would be read too (notebook 7 reads both names).
  const stale = configFilePath(paths, generation === "notebook6" ? "server2" : "notebook6");
  await rm(stale, { force: true });

  if (owner) {
    await chownTree(paths.profileDir, owner);
    // Only the directory itself: its contents are the user's notebooks, not ours to re-own.
    const notebookDir = await lstat(opts.notebookDir);
    if (notebookDir.isDirectory()) await chown(opts.notebookDir, owner.uid, owner.gid);
  }
  return { configFile, agentToken };
}
