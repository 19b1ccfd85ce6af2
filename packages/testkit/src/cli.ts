/** Runs the `nbfleet` CLI from the checkout (bundled once per run: cli-bundle.ts) against a test controller. */
import { execFile } from "node:child_process";
import { bundledCli, repoRoot } from "./repo.js";

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

export function runCli(controller: { url: string; adminToken: string }, ...args: string[]): Promise<CliRun> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bundledCli(), "--url", controller.url, "--token", controller.adminToken, ...args],
      { cwd: repoRoot, env: { ...process.env, NBFLEET_URL: "", NBFLEET_TOKEN: "" } },
      (error, stdout, stderr) => resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}
