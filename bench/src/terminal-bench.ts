/**
 * Issue 5's terminal figure: keystroke echo through the controller on loopback. A real
 * controller (in this process), an agent link with real node-pty in a process of its own, and
 * a WebSocket client typing into a login shell one key at a time: each time is from sending
 * the key to the client receiving its echo (client → controller → agent → pty → shell's
 * readline → agent → controller → client). The line is cleared (^U) every 40 keys, untimed.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { TerminalConnection, buildServer, listen, loadSettings } from "@nbfleet/controller";
import { HandOverProvider } from "@nbfleet/testkit/hand-over-provider";
import { quantile } from "./stats.js";

export interface TerminalBenchResult {
  keystrokes: number;
  warmup: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
  /** 1-minute load average of the machine before and after (other work shares it). */
  loadAverage: [number, number];
}

const here = path.dirname(fileURLToPath(import.meta.url));
const tsxLoader = path.join(here, "../../node_modules/tsx/dist/loader.mjs");

export async function runTerminalBench(options: {
  keystrokes: number;
  warmup?: number;
}): Promise<TerminalBenchResult> {
  const warmup = options.warmup ?? 50;
  const loadBefore = loadavg()[0]!;
  const dataDir = await mkdtemp(path.join(tmpdir(), "nbf-bench-terminal-"));
  const provider = new HandOverProvider();
  const settings = loadSettings({
    flags: { dataDir, listen: "127.0.0.1:0", logLevel: "warn", adminToken: "nbf_bench-terminal-admin-token" },
    env: {},
  });
  const app = await buildServer(settings, { provider });
  let agent: ChildProcess | undefined;
  try {
    const url = await listen(app);
    const token = settings.adminToken!;
    const created = await fetch(`${url}/v1/vms`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ name: "bench", password: "bench-password" }),
    });
    if (created.status !== 201) throw new Error(`creating the VM: ${created.status} ${await created.text()}`);
    agent = spawn(
      process.execPath,
      [
        "--import",
        tsxLoader,
        path.join(here, "../../packages/testkit/src/link-agent-process.ts"),
        url,
        provider.contexts.get("bench")!.bootstrapToken,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    await new Promise<void>((resolve, reject) => {
      agent!.stdout!.on("data", (chunk: Buffer) => chunk.toString().includes("connected") && resolve());
      agent!.once("exit", (code) => reject(new Error(`the bench agent exited with ${code}`)));
    });

    let onOutput: (() => void) | null = null;
    let output = "";
    const connection = await TerminalConnection.open(
      { baseUrl: url, token, vm: "bench", cols: 200, rows: 50 },
      {
        output: (_channel, data) => {
          output += data.toString("utf8");
          onOutput?.();
        },
        closed: () => {},
      },
    );
    const quiet = async (ms: number) => {
      for (let seen = -1; seen !== output.length; ) {
        seen = output.length;
        await new Promise((resolve) => setTimeout(resolve, ms));
      }
    };
    await quiet(300);

    const times: number[] = [];
    const keys = "abcdefghijklmnopqrstuvwxyz";
    for (let i = 0; i < options.keystrokes + warmup; i++) {
      if (i > 0 && i % 40 === 0) {
        connection.input("\x15");
        await quiet(30);
      }
      const key = keys[i % keys.length]!;
      const from = output.length;
      const echoed = new Promise<void>((resolve) => {
        onOutput = () => {
          if (output.includes(key, from)) resolve();
        };
      });
      const sent = performance.now();
      connection.input(key);
      await echoed;
      const elapsed = performance.now() - sent;
      onOutput = null;
      if (i >= warmup) times.push(elapsed);
    }
    connection.input("\x15exit\r");
    return {
      keystrokes: times.length,
      warmup,
      p50Ms: quantile(times, 0.5),
      p99Ms: quantile(times, 0.99),
      maxMs: Math.max(...times),
      meanMs: times.reduce((a, b) => a + b, 0) / times.length,
      loadAverage: [loadBefore, loadavg()[0]!],
    };
  } finally {
    agent?.kill("SIGTERM");
    await app.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}
