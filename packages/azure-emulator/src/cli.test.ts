/** `pnpm azure-emulator --port PORT --data-dir DIR`: one JSON line, then a working HTTPS endpoint. */
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import https from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { describe, expect, it } from "vitest";

const cli = new URL("./cli.ts", import.meta.url).pathname;

describe("azure-emulator CLI", () => {
  it("prints endpoint and caFile as one JSON line and serves the inventory over TLS with that CA", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "nbf-emulator-cli-"));
    const child = spawn(
      process.execPath,
      ["--import", "tsx", cli, "--port", "0", "--data-dir", dir, "--quiet"],
      {
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    try {
      const line = await new Promise<string>((resolve, reject) => {
        createInterface({ input: child.stdout! }).once("line", resolve);
        child.once("exit", (code) => reject(new Error(`the emulator exited with ${code}`)));
      });
      const started = JSON.parse(line) as { endpoint: string; caFile: string };
      expect(started.endpoint).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(started.caFile).toBe(path.join(dir, "tls", "ca.pem"));
      const ca = await readFile(started.caFile, "utf8");
      const inventory = await new Promise<unknown>((resolve, reject) => {
        https
          .get(`${started.endpoint}/_emulator/inventory`, { ca }, (res) => {
            let text = "";
            res.on("data", (chunk) => {
              text += chunk;
            });
            res.on("end", () => resolve(JSON.parse(text)));
          })
          .on("error", reject);
      });
      expect(inventory).toEqual({ resourceGroups: [], resources: [], operationsInProgress: 0 });
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      child.kill("SIGKILL");
      await rm(dir, { recursive: true, force: true });
    }
  });
});
