/** `nbfleet server`'s ACME flags reach the settings, and a bad one stops it naming the flag and variable. */
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { bundledCli, repoRoot } from "@nbfleet/testkit/repo";
import { describe, expect, it } from "vitest";

function server(...args: string[]): Promise<{ code: number; output: string }> {
  const dataDir = makeDataDir("nbf-acme-flags-");
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bundledCli(), "server", "--data-dir", dataDir, "--listen", "127.0.0.1:0", ...args],
      { cwd: repoRoot, env: { PATH: process.env.PATH ?? "", HOME: dataDir }, timeout: 60_000 },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, output: `${stdout}${stderr}` }),
    );
  });
}

describe("nbfleet server ACME flags", () => {
  it("refuse a bad value naming the flag and its variable, before the controller serves", async () => {
    const cases: Array<[string[], RegExp]> = [
      [
        ["--acme-challenge", "dns-01"],
        /NBFLEET_ACME_CHALLENGE \(--acme-challenge\) must be http-01 or tls-alpn-01/,
      ],
      [["--acme-challenge-port", "http"], /--acme-challenge-port\) must be a TCP port.*"http"/],
      [["--certificate-mode", "provided"], /--certificate-mode\) must be self-signed or acme/],
    ];
    const runs = await Promise.all(cases.map(([args]) => server(...args)));
    for (const [i, [args, message]] of cases.entries()) {
      expect(runs[i]!.code, args.join(" ")).not.toBe(0);
      expect(runs[i]!.output, args.join(" ")).toMatch(message);
    }
  }, 120_000);

  it("take the CA file as given (relative to the working directory) and read it at start", async () => {
    const dir = makeDataDir("nbf-acme-flags-ca-");
    writeFileSync(path.join(dir, "ca.pem"), "not a certificate");
    const relative = path.relative(repoRoot, path.join(dir, "ca.pem"));
    const run = await server("--acme-ca-file", relative, "--acme-challenge", "tls-alpn-01");
    expect(run.code).not.toBe(0);
    expect(run.output).toContain(
      `NBFLEET_ACME_CA_FILE (--acme-ca-file) ${path.join(dir, "ca.pem")} is not PEM`,
    );
  }, 60_000);
});
