/** Reads DIR/agent.json, lays CLI overrides over it, checks the result and saves it back. */
import { mkdir, readFile } from "node:fs/promises";
import { AgentError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import type { DataPaths } from "./paths.js";
import {
  type AgentSettings,
  DEFAULT_SETTINGS,
  type LinkSettings,
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
    link: mergeLink(DEFAULT_SETTINGS.link, stored.link, overrides.link),
    certificate: { ...DEFAULT_SETTINGS.certificate, ...stored.certificate, ...overrides.certificate },
  };
  let settings: AgentSettings;
  try {
    settings = settingsValidator.check(merged);
  } catch (error) {
    throw new AgentError("NBF_INVALID_INPUT", (error as Error).message, { file: paths.settingsFile });
  }
  const { controllerUrl, controllerUrls } = settings.link;
  if (controllerUrls && controllerUrls[0] !== controllerUrl) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      `invalid agent settings: link.controllerUrls must start with link.controllerUrl (${JSON.stringify(controllerUrl)}), got ${JSON.stringify(controllerUrls[0])}`,
      { file: paths.settingsFile },
    );
  }
  if (settings.certificate.mode === "acme" && settings.certificate.hostname === null) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      'invalid agent settings: certificate.mode is "acme" but certificate.hostname is null; set the machine\'s public DNS name',
      { file: paths.settingsFile },
    );
  }
  return settings;
}

/**
 * Later layers win field by field, except that a URL and its list travel together: a layer
 * that sets `controllerUrl` brings its `controllerUrls` or none, never an older layer's list.
 */
function mergeLink(...layers: Array<LinkSettings | undefined>): LinkSettings {
  let out = {} as LinkSettings;
  for (const layer of layers) {
    if (!layer) continue;
    if ("controllerUrl" in layer) {
      const { controllerUrls: _older, ...rest } = out;
      out = rest as LinkSettings;
    }
    out = { ...out, ...layer };
  }
  return out;
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
