/**
 * What `nbfleet server` says of the first admin token when its output is not a terminal (as
 * under systemd, where it goes to the journal): where the token is, never the token itself.
 */
import { readFileSync } from "node:fs";
import path from "node:path";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { captureOutput, spawnCli, stopChild } from "@nbfleet/testkit/processes";
import { eventually } from "@nbfleet/testkit/wait";
import { describe, expect, it } from "vitest";

async function serverOutput(dataDir: string, env: Record<string, string>, until: RegExp): Promise<string> {
  const child = spawnCli(["server", "--listen", "127.0.0.1:0", "--data-dir", dataDir], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { PATH: process.env.PATH ?? "", HOME: dataDir, NBFLEET_LOG_LEVEL: "warn", ...env },
  });
  const output = captureOutput(child);
  try {
    return await eventually(
      async () => output(),
      (text) => until.test(text),
      60_000,
      100,
    );
  } finally {
    await stopChild(child);
  }
}

describe("nbfleet server and the first admin token, output not a terminal", () => {
  it("names the file of a generated token without printing it, and says when NBFLEET_ADMIN_TOKEN is not taken", async () => {
    const dataDir = makeDataDir("nbf-admin-token-");
    const first = await serverOutput(dataDir, {}, /admin token created/);
    const token = readFileSync(path.join(dataDir, "admin-token"), "utf8").trim();
    expect(token).toMatch(/^nbf_/);
    expect(first).toContain(`admin token created: it is in ${path.join(dataDir, "admin-token")} (0600)`);
    expect(first).not.toContain(token);

    // An admin token exists: a configured one the store does not know (a revoked one, say) is not taken.
    const configured = "nbf_configured_later_0123456789abcdef";
    const second = await serverOutput(
      dataDir,
      { NBFLEET_ADMIN_TOKEN: configured },
      /NBFLEET_ADMIN_TOKEN is not taken/,
    );
    expect(second).not.toContain(configured);
    expect(readFileSync(path.join(dataDir, "admin-token"), "utf8").trim()).toBe(token);
  });
});
