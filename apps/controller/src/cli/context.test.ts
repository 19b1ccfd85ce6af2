import { writeFileSync } from "node:fs";
import path from "node:path";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { describe, expect, it } from "vitest";
import { clientFrom } from "./context.js";

const dataDir = makeDataDir("nbf-cli-context-", 0o700);
const LOCAL = "nbf_local_admin_token_0123456789abcdef";
writeFileSync(path.join(dataDir, "admin-token"), `${LOCAL}\n`, { mode: 0o600 });
const env = { NBFLEET_DATA_DIR: dataDir };

const tokenFor = async (url: string | undefined, extra: NodeJS.ProcessEnv = {}) =>
  (await clientFrom(url === undefined ? {} : { url }, { ...env, ...extra })).token;

describe("the CLI's token", () => {
  it("takes the data dir's admin token for a controller on this machine", async () => {
    expect(await tokenFor(undefined)).toBe(LOCAL);
    for (const url of [
      "http://127.0.0.1:7071",
      "https://localhost:7070",
      "http://[::1]:7070",
      "http://127.0.0.2:1",
    ]) {
      expect(await tokenFor(url), url).toBe(LOCAL);
    }
  });

  it("never sends the data dir's admin token to another host", async () => {
    for (const url of [
      "http://10.0.0.5:7070",
      "https://nbfleet.example.com",
      "http://127.0.0.1.example.com",
      "not a url",
    ]) {
      expect(await tokenFor(url), url).toBeUndefined();
    }
    expect(await tokenFor(undefined, { NBFLEET_URL: "https://staging.example.com" })).toBeUndefined();
  });

  it("takes a given token anywhere: the flag, then NBFLEET_TOKEN", async () => {
    expect(await tokenFor("https://nbfleet.example.com", { NBFLEET_TOKEN: "nbf_from_env" })).toBe(
      "nbf_from_env",
    );
    expect((await clientFrom({ url: "https://x.example", token: "nbf_flag" }, env)).token).toBe("nbf_flag");
  });
});
