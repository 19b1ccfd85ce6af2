import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { describe, expect, it } from "vitest";
import { releaseKeyPath } from "../artifacts/release-key.js";
import { defaultSettings, loadSettings, parseListen } from "./settings.js";

const home = makeDataDir("nbf-config-", 0o700);

describe("controller settings", () => {
  it("has the documented defaults", () => {
    const settings = loadSettings({ env: {}, home });
    expect(settings.dataDir).toBe(join(home, ".nbfleet"));
    expect(settings.listen).toBe("127.0.0.1:7070");
    expect(settings.adminToken).toBeNull();
    expect(settings.commandTtlSec).toBe(600);
    expect(settings).toEqual({ ...defaultSettings(home), dataDir: join(home, ".nbfleet") });
  });

  it("takes flags over environment over file", () => {
    const dataDir = makeDataDir("nbf-config-data-", 0o700);
    writeFileSync(
      join(dataDir, "config.json"),
      JSON.stringify({ listen: "127.0.0.1:1", reportIntervalSec: 7 }),
    );
    const fromFile = loadSettings({ env: { NBFLEET_DATA_DIR: dataDir }, home });
    expect(fromFile.listen).toBe("127.0.0.1:1");
    expect(fromFile.reportIntervalSec).toBe(7);
    const fromEnv = loadSettings({ env: { NBFLEET_DATA_DIR: dataDir, NBFLEET_LISTEN: "0.0.0.0:2" }, home });
    expect(fromEnv.listen).toBe("0.0.0.0:2");
    const fromFlags = loadSettings({
      env: { NBFLEET_DATA_DIR: dataDir, NBFLEET_LISTEN: "0.0.0.0:2" },
      flags: { listen: "127.0.0.1:3", pingIntervalSec: undefined },
      home,
    });
    expect(fromFlags.listen).toBe("127.0.0.1:3");
    expect(fromFlags.pingIntervalSec).toBe(15);
  });

  it("takes the agents' controller URLs from NBFLEET_CONTROLLER_URLS, a flag or the file; none by default", () => {
    expect(loadSettings({ env: {}, home }).controllerUrls).toBeNull();
    expect(
      loadSettings({ env: { NBFLEET_CONTROLLER_URLS: "https://lb.example, https://r1.example:7443" }, home })
        .controllerUrls,
    ).toEqual(["https://lb.example", "https://r1.example:7443"]);
    expect(
      loadSettings({
        env: { NBFLEET_CONTROLLER_URLS: "https://lb.example" },
        flags: { controllerUrls: ["https://r1.example", "https://r2.example"] },
        home,
      }).controllerUrls,
    ).toEqual(["https://r1.example", "https://r2.example"]);
    const dataDir = makeDataDir("nbf-config-urls-", 0o700);
    writeFileSync(join(dataDir, "config.json"), JSON.stringify({ controllerUrls: ["wss://r1.example"] }));
    expect(loadSettings({ env: { NBFLEET_DATA_DIR: dataDir }, home }).controllerUrls).toEqual([
      "wss://r1.example",
    ]);
  });

  it("refuses a controller URL list with a bad entry, naming it", () => {
    const bad =
      (env: Record<string, string>, flags = {}) =>
      () =>
        loadSettings({ env, flags, home });
    expect(bad({ NBFLEET_CONTROLLER_URLS: "https://r1.example,ftp://r2.example" })).toThrow(
      /controllerUrls.*controller URL 2: "ftp:\/\/r2\.example" must start with https:\/\//,
    );
    expect(bad({ NBFLEET_CONTROLLER_URLS: "https://r1.example,,https://r2.example" })).toThrow(
      /controller URL 2 is empty/,
    );
    expect(bad({}, { controllerUrls: ["https://r1.example", "https://r1.example/"] })).toThrow(
      /same endpoint as controller URL 1/,
    );
    expect(
      bad({}, { controllerUrls: ["https://r1.example", "http://r2.example"], tlsCert: "/c.pem" }),
    ).toThrow(
      /with tlsCert, agents verify the controller and need https:\/\/ or wss:\/\/, got http:\/\/r2\.example/,
    );
  });

  it("parses numbers from the environment and names a bad variable's setting", () => {
    expect(loadSettings({ env: { NBFLEET_COMMAND_TTL_SEC: "0.5" }, home }).commandTtlSec).toBe(0.5);
    expect(() => loadSettings({ env: { NBFLEET_COMMAND_TTL_SEC: "soon" }, home })).toThrow(
      /NBF|commandTtlSec/,
    );
    expect(() => loadSettings({ env: { NBFLEET_LISTEN: "nowhere" }, home })).toThrow(/listen/);
    expect(() => loadSettings({ env: { NBFLEET_ADMIN_TOKEN: "short" }, home })).toThrow(/adminToken/);
  });

  it("takes the HTTP deadlines, event stream buffer and metrics settings from the environment", () => {
    const defaults = loadSettings({ env: {}, home });
    expect(defaults).toMatchObject({
      requestTimeoutSec: 30,
      headersTimeoutSec: 10,
      keepAliveTimeoutSec: 72,
      eventStreamMaxBufferBytes: 1024 * 1024,
      metricsRefreshSec: 15,
      metricsAccess: "public",
    });
    const settings = loadSettings({
      env: {
        NBFLEET_REQUEST_TIMEOUT_SEC: "12",
        NBFLEET_HEADERS_TIMEOUT_SEC: "3.5",
        NBFLEET_KEEP_ALIVE_TIMEOUT_SEC: "9",
        NBFLEET_BODY_LIMIT_BYTES: "2048",
        NBFLEET_EVENT_STREAM_MAX_BUFFER_BYTES: "65536",
        NBFLEET_METRICS_REFRESH_SEC: "2",
        NBFLEET_METRICS_ACCESS: "viewer",
      },
      home,
    });
    expect(settings).toMatchObject({
      requestTimeoutSec: 12,
      headersTimeoutSec: 3.5,
      keepAliveTimeoutSec: 9,
      bodyLimitBytes: 2048,
      eventStreamMaxBufferBytes: 65536,
      metricsRefreshSec: 2,
      metricsAccess: "viewer",
    });
    expect(() => loadSettings({ env: { NBFLEET_METRICS_ACCESS: "everyone" }, home })).toThrow(
      /metricsAccess/,
    );
    expect(() => loadSettings({ env: { NBFLEET_REQUEST_TIMEOUT_SEC: "0" }, home })).toThrow(
      /requestTimeoutSec/,
    );
  });

  it("takes the release key file from NBFLEET_RELEASE_KEY_FILE, a flag or the file; <dataDir>/release-key.pem by default", () => {
    const defaults = loadSettings({ env: {}, home });
    expect(defaults.releaseKeyFile).toBeNull();
    expect(releaseKeyPath(defaults)).toBe(join(home, ".nbfleet", "release-key.pem"));
    const fromEnv = loadSettings({ env: { NBFLEET_RELEASE_KEY_FILE: "/etc/nbfleet/release-key.pem" }, home });
    expect(releaseKeyPath(fromEnv)).toBe("/etc/nbfleet/release-key.pem");
    const fromFlag = loadSettings({
      env: { NBFLEET_RELEASE_KEY_FILE: "/etc/nbfleet/release-key.pem" },
      flags: { releaseKeyFile: "/srv/key.pem" },
      home,
    });
    expect(fromFlag.releaseKeyFile).toBe("/srv/key.pem");
    const dataDir = makeDataDir("nbf-config-key-", 0o700);
    writeFileSync(join(dataDir, "config.json"), JSON.stringify({ releaseKeyFile: "/shared/key.pem" }));
    expect(loadSettings({ env: { NBFLEET_DATA_DIR: dataDir }, home }).releaseKeyFile).toBe("/shared/key.pem");
    expect(releaseKeyPath({ dataDir, releaseKeyFile: null })).toBe(join(dataDir, "release-key.pem"));
    expect(() => loadSettings({ env: {}, flags: { releaseKeyFile: "" }, home })).toThrow(/releaseKeyFile/);
  });

  it("names a bad secret setting without repeating its value", () => {
    const refusal = (env: Record<string, string>) => {
      try {
        loadSettings({ env, home });
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error("accepted");
    };
    const url = refusal({
      NBFLEET_DATABASE_URL: "postgress://nbfleet:Sup3rS3cretPw@db.example:5432/nbfleet",
    });
    expect(url).toMatch(/databaseUrl: .*got "\[redacted\]"/);
    expect(url).not.toContain("Sup3rS3cretPw");
    const token = refusal({ NBFLEET_ADMIN_TOKEN: "nbf_shortsecret" });
    expect(token).toMatch(/adminToken: .*got "\[redacted\]"/);
    expect(token).not.toContain("shortsecret");
    // Other settings still show what was wrong.
    expect(refusal({ NBFLEET_LISTEN: "nowhere" })).toContain('"nowhere"');
  });

  it("refuses unknown keys in a settings file", () => {
    const file = join(home, "bad.json");
    writeFileSync(file, JSON.stringify({ lisen: "127.0.0.1:1" }));
    expect(() => loadSettings({ env: {}, configFile: file, home })).toThrow(/bad\.json/);
  });

  it("splits listen addresses", () => {
    expect(parseListen("127.0.0.1:7070")).toEqual({ host: "127.0.0.1", port: 7070 });
    expect(parseListen("[::1]:0")).toEqual({ host: "::1", port: 0 });
  });
});
