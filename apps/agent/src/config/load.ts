/** Reads DIR/agent.json, lays CLI overrides over it, checks the result and saves it back. */
import { mkdir, readFile } from "node:fs/promises";
import { AgentError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import type { DataPaths } from "./paths.js";
import {
  type AgentSettings,
  DEFAULT_SETTINGS,
  partialSettingsValidator,
  settingsValidator,
} from "./settings.js";

export async function loadSettings(
  paths: DataPaths,
  overrides: Partial<AgentSettings> = {},
): Promise<AgentSettings> {
  const stored = await readStored(paths.settingsFile);
  const merged = {
    ...DEFAULT_SETTINGS,
    ...stored,
    ...overrides,
    restart: { ...DEFAULT_SETTINGS.restart, ...stored.restart, ...overrides.restart },
    link: { ...DEFAULT_SETTINGS.link, ...stored.link, ...overrides.link },
  };
  try {
    return settingsValidator.check(merged);
  } catch (error) {
    throw new AgentError("NBF_INVALID_INPUT", (error as Error).message, { file: paths.settingsFile });
  }
}

export async function saveSettings(paths: DataPaths, settings: AgentSettings): Promise<void> {
  await mkdir(paths.dataDir, { recursive: true });
  await writeFileAtomic(paths.settingsFile, `${JSON.stringify(settings, null, 2)}\n`, { mode: 0o600 });
}

async function readStored(file: string): Promise<Partial<AgentSettings>> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    return {};
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new AgentError("NBF_INVALID_INPUT", `${file} is not valid JSON: ${(error as Error).message}`, {
      file,
    });
  }
  try {
    return partialSettingsValidator.check(value);
  } catch (error) {
    throw new AgentError("NBF_INVALID_INPUT", `${file}: ${(error as Error).message}`, { file });
  }
}
