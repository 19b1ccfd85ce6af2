import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { describe, expect, it } from "vitest";
import { loadSettings, saveSettings } from "./load.js";
import { dataPaths } from "./paths.js";
import { DEFAULT_SETTINGS, controllerUrlsOf } from "./settings.js";

async function tempPaths() {
  return dataPaths(makeDataDir("nbf-settings-", 0o700));
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

  it("reads a settings file of an older agent (one controller URL, no list) as it was", async () => {
    const paths = await tempPaths();
    const old = {
      ...DEFAULT_SETTINGS,
      link: { ...DEFAULT_SETTINGS.link, controllerUrl: "https://c.example" },
    };
    await writeFile(paths.settingsFile, JSON.stringify(old));
    const settings = await loadSettings(paths);
    expect(settings.link).toEqual(old.link);
    expect(controllerUrlsOf(settings.link)).toEqual(["https://c.example"]);
  });

  it("a newer single URL replaces a stored list, never mixes with it", async () => {
    const paths = await tempPaths();
    const urls = ["https://r1.example", "https://r2.example"];
    const link = { ...DEFAULT_SETTINGS.link, controllerUrl: urls[0]!, controllerUrls: urls };
    await saveSettings(paths, { ...DEFAULT_SETTINGS, link });
    expect(controllerUrlsOf((await loadSettings(paths)).link)).toEqual(urls);
    const next = await loadSettings(paths, {
      link: { ...DEFAULT_SETTINGS.link, controllerUrl: "https://other.example" },
    });
    expect(controllerUrlsOf(next.link)).toEqual(["https://other.example"]);
    expect(JSON.stringify(next)).not.toContain("controllerUrls");
  });

  it("refuses a stored list that does not start with controllerUrl, or holds a bad URL", async () => {
    const paths = await tempPaths();
    const link = {
      ...DEFAULT_SETTINGS.link,
      controllerUrl: "https://r1.example",
      controllerUrls: ["https://r2.example", "https://r1.example"],
    };
    await writeFile(paths.settingsFile, JSON.stringify({ link }));
    await expect(loadSettings(paths)).rejects.toThrow(/controllerUrls must start with link\.controllerUrl/);
    await writeFile(
      paths.settingsFile,
      JSON.stringify({ link: { ...link, controllerUrls: ["https://r1.example", "gopher://r2.example"] } }),
    );
    await expect(loadSettings(paths)).rejects.toThrow(/agent\.json.*controllerUrls\.1/);
  });

  it("refuses a settings file that is not JSON", async () => {
    const paths = await tempPaths();
    await writeFile(paths.settingsFile, "{port: 1");
    await expect(loadSettings(paths)).rejects.toThrow(/not valid JSON/);
  });
});
