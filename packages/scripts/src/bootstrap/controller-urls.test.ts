// Several controller URLs through the guest bootstraps: the Linux launcher is read back with a
// real `sh`; the Windows script (no PowerShell here) by what it says.
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { powershellQuote } from "@nbfleet/shared/quote";
import { describe, expect, it } from "vitest";
import { linuxAgentArgv, renderLinuxBootstrap } from "./linux.js";
import type { LinuxBootstrapOptions, WindowsBootstrapOptions } from "./options.js";
import { renderWindowsBootstrap, windowsAgentArgv } from "./windows.js";

const LB = "https://nbfleet.example";
const R1 = "https://replica-1.example:7443";
const R2 = "wss://replica-2.example:7443/nbfleet";

const LINUX: LinuxBootstrapOptions = {
  mode: "systemd",
  controllerUrl: LB,
  artifactUrl: `${LB}/v1/agent/artifact`,
  artifactSha256: "a".repeat(64),
  bootstrapToken: "token-123456",
  dataDir: "/var/lib/nbfleet/agent",
  installDir: "/opt/nbfleet",
  notebookPort: 9999,
  bindIp: "0.0.0.0",
  controllerFingerprint: "ab".repeat(32),
  controllerCertPem: "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n",
};

const WINDOWS: WindowsBootstrapOptions = {
  controllerUrl: LB,
  artifactUrl: `${LB}/v1/agent/artifact`,
  artifactSha256: "c0".repeat(32),
  bootstrapToken: "token-123456",
  notebookPort: 9999,
  bindIp: "0.0.0.0",
  controllerFingerprint: "AB".repeat(32),
};

const run = promisify(execFile);

/** The settings block as `sh` reads it: the named variables' values. */
async function linuxSettings(script: string, names: string[]): Promise<string[]> {
  const template = readFileSync(new URL("./linux-bootstrap.sh", import.meta.url), "utf8");
  const [before, after] = template.split("# nbfleet:settings");
  const block = script.slice(before!.length, script.length - after!.length);
  const print = names.map((name) => `"$${name}"`).join(" ");
  const { stdout } = await run("sh", ["-c", `${block}\nprintf '%s\\0' ${print}`]);
  return stdout.split("\0").slice(0, -1);
}

/** The agent's command line in the launcher (its `set --` line), split by `sh` itself. */
async function launcherArgs(launcher: string): Promise<string[]> {
  const line = launcher.split("\n").find((l) => l.startsWith("set -- "))!;
  const { stdout } = await run("sh", ["-c", `${line}\nprintf '%s\\0' "$@"`]);
  return stdout.split("\0").slice(0, -1);
}

/** `$name = '…'` read back (a doubled quote stands for one; these values hold no curly quotes). */
function powershellString(script: string, name: string): string {
  const start = script.indexOf(`\n$${name} = '`) + `\n$${name} = '`.length;
  let value = "";
  for (let i = start; i < script.length; i++) {
    if (script[i] !== "'") value += script[i];
    else if (script[i + 1] === "'") value += script[++i];
    else return value;
  }
  throw new Error(`$${name}: unterminated`);
}

const controllerFlags = (argv: string[]) =>
  argv.flatMap((arg, i) => (arg === "--controller" ? [argv[i + 1]!] : []));

describe("bootstraps with several controller URLs", () => {
  it("Linux: the launcher gives the agent one --controller per URL, in order", async () => {
    const script = renderLinuxBootstrap({ ...LINUX, controllerUrls: [LB, R1, R2] });
    const [urls, url, launcher] = await linuxSettings(script, [
      "NBF_CONTROLLER_URLS",
      "NBF_CONTROLLER_URL",
      "NBF_LAUNCHER",
    ]);
    expect(urls).toBe(`${LB}, ${R1}, ${R2}`);
    expect(url).toBe(LB);
    const argv = await launcherArgs(launcher!);
    expect(controllerFlags(argv)).toEqual([LB, R1, R2]);
    // One pin for all of them.
    expect(argv.filter((arg) => arg === "--controller-fingerprint")).toHaveLength(1);
  });

  it("Linux: without a list, one --controller with the bootstrap's own URL, as before", async () => {
    const script = renderLinuxBootstrap(LINUX);
    const [urls, launcher] = await linuxSettings(script, ["NBF_CONTROLLER_URLS", "NBF_LAUNCHER"]);
    expect(urls).toBe(LB);
    expect(controllerFlags(await launcherArgs(launcher!))).toEqual([LB]);
    expect(controllerFlags(linuxAgentArgv(LINUX))).toEqual([LB]);
  });

  it("Windows: the launcher and the log line carry every URL, in order", () => {
    const script = renderWindowsBootstrap({ ...WINDOWS, controllerUrls: [R1, R2] });
    expect(controllerFlags(windowsAgentArgv({ ...WINDOWS, controllerUrls: [R1, R2] }))).toEqual([R1, R2]);
    // The launcher carries the agent's arguments as one Windows command line.
    expect(powershellString(`\n${powershellString(script, "NbfLauncher")}`, "agentCommandLine")).toContain(
      [R1, R2].map((url) => `--controller ${url}`).join(" "),
    );
    expect(powershellString(script, "NbfControllerUrls")).toBe(`${R1}, ${R2}`);
    expect(script).toContain('Say "bootstrap for controller $NbfControllerUrls"');
    expect(controllerFlags(windowsAgentArgv(WINDOWS))).toEqual([LB]);
  });

  it("refuses a list with a bad entry before rendering, naming it", () => {
    for (const render of [
      (urls: string[]) => renderLinuxBootstrap({ ...LINUX, controllerUrls: urls }),
      (urls: string[]) => renderWindowsBootstrap({ ...WINDOWS, controllerUrls: urls }),
    ]) {
      expect(() => render([R1, "ftp://replica-2.example"])).toThrow(/controllerUrls\.1/);
      expect(() => render([R1, "https://x.example/'; rm -rf /"])).toThrow(/controllerUrls\.1/);
      expect(() => render([R1, `${R1}/`])).toThrow(/controllerUrls: controller URL 2 .* same endpoint/);
      expect(() => render([R1, "http://replica-2.example:7070"])).toThrow(
        /a controller CA or fingerprint needs https:\/\/ or wss:\/\/ URLs, got http:\/\/replica-2/,
      );
      expect(() => render([])).toThrow(/controllerUrls/);
    }
  });
});
