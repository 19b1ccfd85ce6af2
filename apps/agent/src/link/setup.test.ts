import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { makeTestCa } from "@nbfleet/testkit/test-ca";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dataPaths } from "../config/paths.js";
import { DEFAULT_SETTINGS, type LinkSettings } from "../config/settings.js";
import { resolveLinkSettings, setupLink } from "./setup.js";

const FP = "ab".repeat(32);
const FP_UPPER = "AB:".repeat(31) + "AB";
const stored: LinkSettings = {
  ...DEFAULT_SETTINGS.link,
  controllerUrl: "https://c.example:7443",
  caFile: "/data/state/controller-ca.pem",
  fingerprintSha256: FP_UPPER,
};

describe("resolveLinkSettings", () => {
  it("keeps the stored URL and pins when nothing new is given (a plain `up` after a reboot)", () => {
    expect(resolveLinkSettings(stored, {})).toEqual(stored);
    expect(resolveLinkSettings(stored, { url: "https://c.example:7443" })).toEqual(stored);
  });

  it("drops the pins of the old URL when a new URL comes without pins", () => {
    expect(resolveLinkSettings(stored, { url: "https://other.example" })).toMatchObject({
      controllerUrl: "https://other.example",
      caFile: null,
      fingerprintSha256: null,
    });
  });

  it("normalizes a fingerprint to uppercase colon hex", () => {
    expect(
      resolveLinkSettings(DEFAULT_SETTINGS.link, { url: "wss://c", fingerprintSha256: FP }),
    ).toMatchObject({
      fingerprintSha256: FP_UPPER,
    });
  });

  it("refuses pins without a URL, pins on a plain URL, and a URL it cannot dial", () => {
    expect(() => resolveLinkSettings(DEFAULT_SETTINGS.link, { fingerprintSha256: FP })).toThrow(
      /need a controller URL/,
    );
    expect(() =>
      resolveLinkSettings(DEFAULT_SETTINGS.link, { url: "http://c:7070", fingerprintSha256: FP }),
    ).toThrow(/https:\/\/ or wss:\/\//);
    expect(() => resolveLinkSettings(DEFAULT_SETTINGS.link, { url: "ftp://c" })).toThrow(/must start with/);
    expect(() =>
      resolveLinkSettings(DEFAULT_SETTINGS.link, { fingerprintSha256: "AB:CD", url: "wss://c" }),
    ).toThrow(/SHA-256/);
  });
});

describe("setupLink", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "nbf-link-setup-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("takes flags over the environment, reads the token file and keeps a copy of the CA", async () => {
    const paths = dataPaths(path.join(dir, "data"));
    const ca = await makeTestCa();
    await writeFile(path.join(dir, "ca.pem"), ca.caPem);
    await writeFile(path.join(dir, "token"), "nbfb_from-the-file\n");
    const setup = await setupLink(
      paths,
      DEFAULT_SETTINGS.link,
      {
        controller: "https://flag.example",
        bootstrapTokenFile: path.join(dir, "token"),
        controllerCa: path.join(dir, "ca.pem"),
      },
      { NBFLEET_CONTROLLER_URL: "https://env.example", NBFLEET_BOOTSTRAP_TOKEN: "nbfb_from-env" },
    );
    expect(setup.bootstrapToken).toBe("nbfb_from-the-file");
    expect(setup.settings).toMatchObject({
      controllerUrl: "https://flag.example",
      caFile: paths.controllerCa,
    });
    expect(await readFile(paths.controllerCa, "utf8")).toBe(ca.caPem);
    // The token file is left alone: the agent deletes nothing it was given.
    expect(await readFile(path.join(dir, "token"), "utf8")).toBe("nbfb_from-the-file\n");
  });

  it("falls back to the environment, and to nothing", async () => {
    const paths = dataPaths(path.join(dir, "data"));
    const fromEnv = await setupLink(
      paths,
      DEFAULT_SETTINGS.link,
      {},
      {
        NBFLEET_CONTROLLER_URL: "http://127.0.0.1:7070",
        NBFLEET_BOOTSTRAP_TOKEN: " nbfb_from-env ",
      },
    );
    expect(fromEnv).toEqual({
      settings: { ...DEFAULT_SETTINGS.link, controllerUrl: "http://127.0.0.1:7070" },
      bootstrapToken: "nbfb_from-env",
    });
    expect(await setupLink(paths, DEFAULT_SETTINGS.link, {}, {})).toEqual({
      settings: DEFAULT_SETTINGS.link,
    });
  });

  it("refuses an empty token file and a CA file that is not a certificate", async () => {
    const paths = dataPaths(path.join(dir, "data"));
    await writeFile(path.join(dir, "empty"), "\n");
    await writeFile(path.join(dir, "not-a-cert.pem"), "hello");
    await expect(
      setupLink(
        paths,
        DEFAULT_SETTINGS.link,
        { controller: "wss://c", bootstrapTokenFile: path.join(dir, "empty") },
        {},
      ),
    ).rejects.toThrow(/exactly one token/);
    await expect(
      setupLink(
        paths,
        DEFAULT_SETTINGS.link,
        { controller: "wss://c", controllerCa: path.join(dir, "not-a-cert.pem") },
        {},
      ),
    ).rejects.toThrow(/not a readable PEM certificate/);
  });
});
