import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadSettings, saveSettings } from "./load.js";
import { dataPaths } from "./paths.js";
import { DEFAULT_SETTINGS } from "./settings.js";

async function tempPaths() {
  return dataPaths(await mkdtemp(path.join(tmpdir(), "nbf-settings-")));
}

describe("agent settings", () => {
  it("defaults to the design's values", async () => {
    const settings = await loadSettings(await tempPaths());
    expect(settings.port).toBe(9999);
    expect(settings.runAs).toBe("nbfleet");
    expect(settings.restart.initialBackoffMs).toBe(1000);
    expect(settings.restart.maxBackoffMs).toBe(60_000);
  });

  it("lays overrides over the saved file", async () => {
    const paths = await tempPaths();
    await saveSettings(paths, { ...DEFAULT_SETTINGS, port: 8888, baseUrl: "/nb/" });
    const settings = await loadSettings(paths, { port: 9000 });
    expect(settings).toMatchObject({ port: 9000, baseUrl: "/nb/" });
  });

  it("names the bad field and the allowed range", async () => {
    const paths = await tempPaths();
    await expect(loadSettings(paths, { port: 70000 })).rejects.toThrow(/port.*65535/);
  });

  it("refuses unknown fields in the settings file, naming the file", async () => {
    const paths = await tempPaths();
    await writeFile(paths.settingsFile, JSON.stringify({ prot: 1 }));
    await expect(loadSettings(paths)).rejects.toThrow(/agent\.json.*prot/);
  });

  it("refuses a settings file that is not JSON", async () => {
    const paths = await tempPaths();
    await writeFile(paths.settingsFile, "{port: 1");
    await expect(loadSettings(paths)).rejects.toThrow(/not valid JSON/);
  });
});
