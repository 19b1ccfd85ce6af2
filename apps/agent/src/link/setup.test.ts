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
    expect(resolveLinkSettings(stored, { urls: ["https://c.example:7443"] })).toEqual(stored);
  });

  it("drops the pins of the old URL when a new URL comes without pins", () => {
    expect(resolveLinkSettings(stored, { urls: ["https://other.example"] })).toMatchObject({
      controllerUrl: "https://other.example",
      caFile: null,
      fingerprintSha256: null,
    });
  });

  it("normalizes a fingerprint to uppercase colon hex", () => {
    expect(
      resolveLinkSettings(DEFAULT_SETTINGS.link, { urls: ["wss://c"], fingerprintSha256: FP }),
    ).toMatchObject({
      fingerprintSha256: FP_UPPER,
    });
  });

  it("refuses pins without a URL, pins on a plain URL, and a URL it cannot dial", () => {
    expect(() => resolveLinkSettings(DEFAULT_SETTINGS.link, { fingerprintSha256: FP })).toThrow(
      /need a controller URL/,
    );
    expect(() =>
      resolveLinkSettings(DEFAULT_SETTINGS.link, { urls: ["http://c:7070"], fingerprintSha256: FP }),
    ).toThrow(/https:\/\/ or wss:\/\//);
    expect(() => resolveLinkSettings(DEFAULT_SETTINGS.link, { urls: ["ftp://c"] })).toThrow(
      /must start with/,
    );
    expect(() =>
      resolveLinkSettings(DEFAULT_SETTINGS.link, { fingerprintSha256: "AB:CD", urls: ["wss://c"] }),
    ).toThrow(/SHA-256/);
  });
});

describe("resolveLinkSettings with several controller URLs", () => {
  const A = "https://r1.example:7443";
  const B = "https://r2.example:7443";

  it("keeps the first as controllerUrl and the whole list in order; one URL writes no list", () => {
    const next = resolveLinkSettings(DEFAULT_SETTINGS.link, { urls: [A, B], fingerprintSha256: FP });
    expect(next).toMatchObject({ controllerUrl: A, controllerUrls: [A, B], fingerprintSha256: FP_UPPER });
    const single = resolveLinkSettings(next, { urls: [A] });
    expect(single.controllerUrl).toBe(A);
    expect("controllerUrls" in single).toBe(false);
  });

  it("keeps the pins for the same URLs in another order, drops them for other URLs", () => {
    const stored = resolveLinkSettings(DEFAULT_SETTINGS.link, { urls: [A, B], fingerprintSha256: FP });
    expect(resolveLinkSettings(stored, {})).toEqual(stored);
    expect(resolveLinkSettings(stored, { urls: [B, A] })).toMatchObject({
      controllerUrl: B,
      controllerUrls: [B, A],
      fingerprintSha256: FP_UPPER,
    });
    expect(resolveLinkSettings(stored, { urls: [A, "https://r3.example"] })).toMatchObject({
      fingerprintSha256: null,
    });
  });

  it("refuses a list with a bad scheme, naming the entry, before anything is stored", () => {
    expect(() => resolveLinkSettings(DEFAULT_SETTINGS.link, { urls: [A, "ftp://r2.example"] })).toThrow(
      /controller URL 2: "ftp:\/\/r2\.example" must start with https:\/\//,
    );
    expect(() => resolveLinkSettings(DEFAULT_SETTINGS.link, { urls: [A, "javascript:alert(1)"] })).toThrow(
      /controller URL 2/,
    );
    expect(() => resolveLinkSettings(DEFAULT_SETTINGS.link, { urls: [A, ""] })).toThrow(
      /controller URL 2 is empty/,
    );
    expect(() => resolveLinkSettings(DEFAULT_SETTINGS.link, { urls: [A, `${A}/`] })).toThrow(
      /same endpoint as controller URL 1/,
    );
  });

  it("applies the pins to every URL: a plain one among them is refused, naming it", () => {
    expect(() =>
      resolveLinkSettings(DEFAULT_SETTINGS.link, {
        urls: [A, "http://r2.example:7070"],
        fingerprintSha256: FP,
      }),
    ).toThrow(/https:\/\/ or wss:\/\/ controller URL, got http:\/\/r2\.example:7070/);
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

  it("takes a repeated --controller, else NBFLEET_CONTROLLER_URLS comma-separated", async () => {
    const paths = dataPaths(path.join(dir, "data"));
    const fromFlags = await setupLink(
      paths,
      DEFAULT_SETTINGS.link,
      { controller: ["https://r1.example", "https://r2.example"] },
      { NBFLEET_CONTROLLER_URLS: "https://env.example" },
    );
    expect(fromFlags.settings).toMatchObject({
      controllerUrl: "https://r1.example",
      controllerUrls: ["https://r1.example", "https://r2.example"],
    });
    const fromEnv = await setupLink(
      paths,
      DEFAULT_SETTINGS.link,
      {},
      { NBFLEET_CONTROLLER_URLS: " https://r1.example , wss://r2.example:7443/nbfleet " },
    );
    expect(fromEnv.settings.controllerUrls).toEqual(["https://r1.example", "wss://r2.example:7443/nbfleet"]);
    const oneInList = await setupLink(
      paths,
      DEFAULT_SETTINGS.link,
      {},
      { NBFLEET_CONTROLLER_URLS: "https://r1.example" },
    );
    expect(oneInList.settings).toEqual({ ...DEFAULT_SETTINGS.link, controllerUrl: "https://r1.example" });
    await expect(
      setupLink(
        paths,
        DEFAULT_SETTINGS.link,
        {},
        { NBFLEET_CONTROLLER_URLS: "https://r1.example,ftp://r2.example" },
      ),
    ).rejects.toThrow(/controller URL 2: "ftp:/);
    await expect(
      setupLink(
        paths,
        DEFAULT_SETTINGS.link,
        {},
        { NBFLEET_CONTROLLER_URL: "https://a.example", NBFLEET_CONTROLLER_URLS: "https://b.example" },
      ),
    ).rejects.toThrow(/both set/);
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
