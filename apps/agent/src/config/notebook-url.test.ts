import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { describe, expect, it } from "vitest";
import { loadSettings } from "./load.js";
import { notebookUrl } from "./notebook-url.js";
import { dataPaths } from "./paths.js";
import { DEFAULT_SETTINGS } from "./settings.js";

describe("the notebook's URL", () => {
  it("is the server's own address without a public URL", () => {
    expect(notebookUrl(DEFAULT_SETTINGS)).toBe("https://localhost:9999/");
    expect(notebookUrl({ ...DEFAULT_SETTINGS, ip: "127.0.0.1", port: 8888, baseUrl: "/nb/" })).toBe(
      "https://127.0.0.1:8888/nb/",
    );
    expect(notebookUrl({ ...DEFAULT_SETTINGS, ip: "::1" })).toBe("https://[::1]:9999/");
    expect(notebookUrl({ ...DEFAULT_SETTINGS, hostnames: ["vm1.example"] })).toBe(
      "https://vm1.example:9999/",
    );
  });

  it("is the public URL handed over at bootstrap (the public port, not the private one)", () => {
    const settings = {
      ...DEFAULT_SETTINGS,
      hostnames: ["vm1-abc123.westeurope.cloudapp.azure.com"],
      publicUrl: "https://vm1-abc123.westeurope.cloudapp.azure.com/",
    };
    expect(notebookUrl(settings)).toBe("https://vm1-abc123.westeurope.cloudapp.azure.com/");
  });

  it("takes only an https URL as the public URL, naming the field", async () => {
    const paths = dataPaths(makeDataDir("nbf-public-url-", 0o700));
    await expect(loadSettings(paths, { publicUrl: "http://vm1.example/" })).rejects.toThrow(/publicUrl/);
    await expect(loadSettings(paths, { publicUrl: "https://vm1.example/ x" })).rejects.toThrow(/publicUrl/);
    expect((await loadSettings(paths, { publicUrl: "https://vm1.example/" })).publicUrl).toBe(
      "https://vm1.example/",
    );
  });
});
