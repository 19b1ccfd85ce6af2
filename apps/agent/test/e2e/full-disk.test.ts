/**
 * A full disk must not kill the agent. The agent's data directory is a small tmpfs of its own,
 * filled to the last byte (and kept full) while the agent runs Debian's Jupyter and holds a link
 * to the fake controller (the real protocol). An agent started again on that disk re-adopts the
 * server and reconnects; a notebook restart then makes it write its log, events, restart count
 * and pid record into the full disk. The agent keeps running on the same
 * connection, its `resources` check fails naming the full data directory, and once the filler
 * is deleted every write it missed lands (the events of the restart appear in the event log,
 * the pid record names the new server) and the check passes again.
 */
import { execFile } from "node:child_process";
import { mkdtemp, open, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import type { HealthCheck, StateMessage } from "@nbfleet/shared";
import { type RunningAgent, startAgent, stopAgent } from "@nbfleet/testkit/agent-process";
import { FakeController } from "@nbfleet/testkit/fake-controller";
import { freePort } from "@nbfleet/testkit/ports";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataPaths } from "../../src/config/paths.js";

const run = promisify(execFile);
const TMPFS_SIZE = "48m";
const BOOTSTRAP_TOKEN = "nbfb_full-disk-e2e-0123456789abcdef";

let mountPoint = "";
let mounted = false;
let secretsDir = "";
let fake: FakeController | undefined;
let agent: RunningAgent | undefined;
let runaway: { stop: () => Promise<void> } | undefined;

beforeAll(async () => {
  mountPoint = await mkdtemp(path.join(tmpdir(), "nbf-full-disk-"));
  await run("mount", ["-t", "tmpfs", "-o", `size=${TMPFS_SIZE},mode=0755`, "nbf-full-disk", mountPoint]);
  mounted = true;
  secretsDir = await mkdtemp(path.join(tmpdir(), "nbf-full-disk-secrets-"));
});

afterAll(async () => {
  await runaway?.stop();
  if (agent) await stopAgent(agent, "SIGINT").catch(() => undefined);
  await fake?.close();
  if (mounted) await run("umount", ["-l", mountPoint]).catch(() => undefined);
  if (mountPoint) await rmdir(mountPoint).catch(() => undefined);
  if (secretsDir) await rm(secretsDir, { recursive: true, force: true });
});

/** Appends until the filesystem refuses one more byte; returns how much was added. */
async function fillToTheBrim(file: string): Promise<number> {
  const handle = await open(file, "a", 0o600);
  let written = 0;
  try {
    for (const size of [1024 * 1024, 4096, 1]) {
      const chunk = Buffer.alloc(size, 0x61);
      for (;;) {
        try {
          const { bytesWritten } = await handle.write(chunk);
          written += bytesWritten;
          if (bytesWritten < size) break;
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
          break;
        }
      }
    }
  } finally {
    await handle.close();
  }
  return written;
}

/**
 * A runaway writer: keeps the disk full, taking every page anything else frees (Jupyter deletes
 * its runtime files when it stops) within a few milliseconds.
 */
function hog(file: string): { stop: () => Promise<void> } {
  let running = true;
  const done = (async () => {
    while (running) {
      // The test may end (and the file go) while it runs: an ending hog has nothing to say.
      await fillToTheBrim(file).catch(() => undefined);
      await sleep(5);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
    },
  };
}

/** The pending value, or a failure with the agent's last words as soon as its process ends. */
function whileAlive<T>(pending: Promise<T>): Promise<T> {
  const child = agent!.process;
  let onExit = (_code: number | null, _signal: string | null) => {};
  const exited = new Promise<never>((_, reject) => {
    onExit = (code, signal) =>
      reject(new Error(`the agent exited (${code ?? signal}):\n${agent!.stderr().slice(-2000)}`));
    if (child.exitCode !== null || child.signalCode !== null) onExit(child.exitCode, child.signalCode);
    else child.once("exit", onExit);
  });
  exited.catch(() => undefined);
  return Promise.race([pending, exited]).finally(() => child.off("exit", onExit));
}

const resourcesOf = (message: StateMessage): HealthCheck | undefined =>
  message.state.health.checks.find((c) => c.name === "resources");
/** Nothing wrong with the disk or the agent's writes (a busy test machine may make cpu warn). */
const diskFine = (check: HealthCheck | undefined): boolean =>
  check !== undefined &&
  (check.status === "pass" ||
    (check.status === "warn" && /^cpu overloaded: load [\d.]+ on \d+ cores$/.test(check.message)));

describe("the agent on a full disk", () => {
  it("keeps running and connected, fails `resources` naming the disk, and writes again once space returns", async () => {
    const dataDir = mountPoint;
    const paths = dataPaths(dataDir);
    // Reports every second; no deep check (a kernel cannot start on a full disk, which is not this test).
    await writeFile(
      paths.settingsFile,
      JSON.stringify({ reportIntervalSec: 1, deepCheckIntervalSec: 0, stopGraceMs: 5000 }),
    );
    const tokenFile = path.join(secretsDir, "bootstrap-token");
    await writeFile(tokenFile, `${BOOTSTRAP_TOKEN}\n`, { mode: 0o600 });
    fake = await FakeController.start({ bootstrapTokens: [BOOTSTRAP_TOKEN], reportIntervalSec: 1 });
    const port = await freePort();
    agent = await startAgent(dataDir, port, {
      password: "a full disk is no reason to die",
      args: ["--controller", fake.url, "--bootstrap-token-file", tokenFile],
    });
    await fake.waitForWelcomed(1, 30_000);
    const healthy = await fake.waitForMessage(
      "state",
      (m) => m.state.notebook.state === "running" && resourcesOf(m)?.status !== "fail",
      { timeoutMs: 30_000 },
    );
    const firstPid = healthy.message.state.notebook.pid!;
    const restartsBefore = healthy.message.state.notebook.restarts;
    const eventsBefore = (await readFile(paths.eventsFile, "utf8")).split("\n").filter(Boolean).length;

    const filler = path.join(dataDir, "filler");
    expect(await fillToTheBrim(filler)).toBeGreaterThan(1024 * 1024);
    runaway = hog(filler);

    // An agent started again on the full disk (an upgrade, a crash) comes up: it re-adopts the
    // running server and reconnects, rewriting none of its unchanged files on the way.
    await stopAgent(agent, "SIGTERM");
    agent = await startAgent(dataDir, port);
    expect(agent.summary.how).toBe("adopted");
    expect(agent.summary.pid).toBe(firstPid);
    const connection = await fake.waitForWelcomed(2, 30_000);
    const full = fake.messages.length;

    // The restart makes the agent log, record events, count the restart and write a pid record
    // into the full disk. Jupyter itself cannot start there (notebook 6 must write its runtime
    // files): the restart fails with a clear error, and the agent goes on.
    const restart = fake.command("notebook.restart", {});
    const result = await whileAlive(fake.sendCommand(restart, 90_000));
    expect(result.message.ok).toBe(false);
    expect(result.message.error?.code, JSON.stringify(result.message.error)).toBe(
      "NBF_NOTEBOOK_START_FAILED",
    );
    expect(result.message.error?.message).toContain("No space left on device");

    // More than a page of the agent's own log, all refused: every command is logged.
    for (let i = 0; i < 40; i++) {
      const tail = await whileAlive(
        fake.sendCommand(fake.command("logs.tail", { source: "agent", lines: 1 }), 10_000),
      );
      expect(tail.message.ok).toBe(true);
    }

    const failing = await whileAlive(
      fake.waitForMessage("state", (m) => resourcesOf(m)?.status === "fail", {
        from: full,
        timeoutMs: 30_000,
      }),
    );
    expect(resourcesOf(failing.message)?.message).toContain(`disk of ${dataDir} 100 % used`);
    // Still alive a few reports later, on the very same connection: no drop, no reconnect.
    const later = await whileAlive(
      fake.waitForMessage("state", () => true, { from: fake.messages.length + 3, timeoutMs: 30_000 }),
    );
    expect(agent.process.exitCode).toBeNull();
    expect(agent.process.signalCode).toBeNull();
    expect([failing.connection, later.connection]).toEqual([connection.id, connection.id]);
    expect(connection.closedAt).toBeNull();
    expect(fake.connections.filter((c) => c.welcomedAt !== null)).toHaveLength(2);
    expect(resourcesOf(later.message)?.status).toBe("fail");
    // The agent says which of its writes fail, and why.
    expect(resourcesOf(later.message)?.message).toMatch(/the agent cannot write its .*: ENOSPC/);
    // Every event the controller was told while the disk was full must reach the event log later.
    const toldWhileFull = fake
      .messagesOf("event")
      .filter((r) => r.at >= fake!.messages[full - 1]!.at)
      .map((r) => r.message.event);
    expect(toldWhileFull.map((e) => e.kind)).toContain("notebook.start_failed");

    await runaway.stop();
    await rm(filler);
    const recovered = await fake
      .waitForMessage("state", (m) => diskFine(resourcesOf(m)), {
        from: fake.messages.length,
        timeoutMs: 30_000,
      })
      .catch((error: Error) => {
        const last = fake!.messagesOf("state").at(-1)?.message;
        throw new Error(
          `${error.message}; last resources check: ${JSON.stringify(last && resourcesOf(last))}`,
        );
      });
    expect(recovered.connection).toBe(connection.id);
    // The writes the full disk refused land once it has room again.
    const events = await waitFor(
      "the failed restart's events in the event log",
      async () => {
        const lines = (await readFile(paths.eventsFile, "utf8")).split("\n").filter(Boolean);
        return lines.some((l) => l.includes('"notebook.start_failed"')) && lines;
      },
      30_000,
    );
    expect(events.length).toBeGreaterThan(eventsBefore);
    const written = await readFile(paths.eventsFile, "utf8");
    for (const event of toldWhileFull) expect(written).toContain(JSON.stringify(event));
    const restarts = await waitFor(
      "the restart count on disk",
      async () => {
        const saved = JSON.parse(await readFile(paths.restartsFile, "utf8")) as { restarts: number };
        return saved.restarts === restartsBefore + 1 && saved;
      },
      30_000,
    );
    expect(restarts.restarts).toBe(restartsBefore + 1);
    const agentLog = await readFile(paths.agentLog, "utf8");
    expect(agentLog).toContain(restart.id);

    // And the notebook comes back with a start, its pid record written.
    const started = await fake.sendCommand(fake.command("notebook.start", {}), 90_000);
    expect(started.message.ok, JSON.stringify(started.message.error)).toBe(true);
    const back = await fake.waitForMessage(
      "state",
      (m) => m.state.notebook.state === "running" && m.state.health.status !== "unhealthy",
      { from: fake.messages.length, timeoutMs: 30_000 },
    );
    const newPid = back.message.state.notebook.pid;
    expect(newPid).not.toBe(firstPid);
    const record = JSON.parse(await readFile(paths.pidFile, "utf8")) as { pid: number };
    expect(record.pid).toBe(newPid);
    expect(agent.process.exitCode).toBeNull();
    expect(back.connection).toBe(connection.id);
    expect(connection.closedAt).toBeNull();
  }, 240_000);
});
