/**
 * The point of ACME, seen from a browser: Debian's Chromium with pebble's root installed in its
 * NSS store (as an operator's machine trusts Let's Encrypt's) opens the notebook by its DNS name
 * and logs in without any certificate warning or flag that skips verification. The same
 * Chromium without the root is refused, so the check is real.
 */
import { rmSync } from "node:fs";
import path from "node:path";
import { type RunningAgent, agentCli, startAgent, stopAgent } from "@nbfleet/testkit/agent-process";
import { launchChromiumTrusting } from "@nbfleet/testkit/chromium-trusting";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { type SharedPebble, sharedPebble } from "@nbfleet/testkit/shared-pebble";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const NAME = "browser.acme.test";
const PASSWORD = "correct horse battery staple";
let pebble: SharedPebble;
let agent: RunningAgent | undefined;
let dataDir: string;
let homes: string;
let port: number;
const browsers: Array<Awaited<ReturnType<typeof launchChromiumTrusting>>> = [];

beforeAll(async () => {
  pebble = await sharedPebble(NAME);
  dataDir = makeDataDir("nbf-acme-browser-");
  homes = makeDataDir("nbf-acme-homes-");
  port = await freePort();
  // Listening beyond loopback, as on a VM: Jupyter refuses (403) a request whose Host is a DNS
  // name when the server listens on loopback only (its allow_remote_access default).
  agent = await startAgent(dataDir, port, { password: PASSWORD, args: ["--ip", "0.0.0.0"] });
  const issued = await agentCli([
    "certificate",
    "acme",
    "--data-dir",
    dataDir,
    "--hostname",
    NAME,
    "--directory",
    pebble.directoryUrl,
    "--ca-file",
    pebble.caFile,
    "--challenge-port",
    String(pebble.httpPort),
  ]);
  if (issued.code !== 0) throw new Error(`certificate acme failed: ${issued.stderr}`);
});
afterAll(async () => {
  for (const browser of browsers) await browser.close().catch(() => undefined);
  if (agent) await stopAgent(agent, "SIGINT").catch(() => undefined);
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  rmSync(homes, { recursive: true, force: true });
});

async function chromiumTrusting(name: string, rootPem: string | null) {
  const browser = await launchChromiumTrusting({
    home: path.join(homes, name),
    rootPem,
    loopbackNames: [NAME],
  });
  browsers.push(browser);
  return browser;
}

describe("Chromium and the ACME certificate", () => {
  it("with pebble's root installed: opens https://<name>/ and logs in with no warning", async () => {
    const browser = await chromiumTrusting("trusting", await pebble.rootPem());
    const context = await browser.newContext();
    const page = await context.newPage();
    const response = await page.goto(`https://${NAME}:${port}/`, { timeout: 30_000 });
    expect(response?.status()).toBe(200);
    expect(new URL(page.url()).pathname).toBe("/login");
    const security = await response?.securityDetails();
    expect(security?.subjectName).toBe(NAME);
    expect(security?.issuer).toMatch(/^Pebble Intermediate CA/);
    await page.fill("#password_input", PASSWORD);
    await page.click("#login_submit");
    await page.waitForURL((url: URL) => url.pathname === "/tree", { timeout: 30_000 });
    await page.locator("#notebook_list").waitFor({ timeout: 30_000 });
    await context.close();
  });

  it("without it: Chromium refuses the certificate (the check above is real)", async () => {
    const browser = await chromiumTrusting("not-trusting", null);
    const page = await (await browser.newContext()).newPage();
    const error = await page
      .goto(`https://${NAME}:${port}/`, { timeout: 30_000 })
      .catch((caught: Error) => caught);
    expect(String(error)).toContain("net::ERR_CERT_AUTHORITY_INVALID");
  });
});
