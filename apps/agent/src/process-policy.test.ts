/** The policy in a real Node process: what survives and what ends it (default Node dies on all of it). */
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { EXIT_CODE_INTERNAL } from "./process-policy.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const policy = path.join(here, "process-policy.ts");
const tsxLoader = path.resolve(here, "../../../node_modules/tsx/dist/loader.mjs");

function run(body: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = `import { installProcessPolicy } from ${JSON.stringify(policy)};\ninstallProcessPolicy();\n${body}`;
  const child = spawn(process.execPath, ["--import", tsxLoader, "--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => {
    stdout += c.toString();
  });
  child.stderr.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, stdout, stderr })));
}

const enospc = `Object.assign(new Error("no space left on device"), { code: "ENOSPC" })`;

describe("the agent's process policy", () => {
  it("goes on after unhandled rejections and uncaught I/O errors, reporting them rate-limited", async () => {
    const result = await run(`
      for (let i = 0; i < 3; i++) Promise.reject(${enospc});
      setTimeout(() => { throw ${enospc}; }, 10);
      setTimeout(() => { console.log("still running"); process.exit(0); }, 300);
    `);
    expect(result.stdout).toBe("still running\n");
    expect(result.code).toBe(0);
    const reports = result.stderr.split("\n").filter((l) => l.startsWith("nbfleet-agent:"));
    expect(reports).toHaveLength(2);
    expect(reports[0]).toContain("unhandled rejection (the agent goes on): Error: no space left on device");
    expect(reports[1]).toContain("uncaught I/O error (the agent goes on)");
  });

  it("ends the process with code 70 on any other uncaught exception, saying so", async () => {
    const result = await run(`
      setTimeout(() => { null.property; }, 10);
      setTimeout(() => { console.log("should not run"); }, 500);
    `);
    expect(result.code).toBe(EXIT_CODE_INTERNAL);
    expect(result.stdout).toBe("");
    expect(result.stderr).toContain(
      `uncaught exception (the agent exits with ${EXIT_CODE_INTERNAL}): TypeError`,
    );
  });
});
