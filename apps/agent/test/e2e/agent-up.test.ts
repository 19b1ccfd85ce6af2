/**
 * The standalone agent against the real Jupyter notebook server from Debian: what an operator
 * sees through `nbfleet-agent up|status|check|password|certificate` and through a browser's
 * login form.
 */
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import {
  AgentExit,
  type RunningAgent,
  agentCli,
  agentJson,
  login,
  servedFingerprint,
  startAgent,
  stopAgent,
} from "@nbfleet/testkit/agent-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataPaths } from "../../src/config/paths.js";
import { sendCommand } from "../../src/control/client.js";
import { isRunning } from "../../src/supervisor/proc.js";

interface Status {
  agent: string;
  notebook: {
    state: string;
    pid: number | null;
    restarts: number;
    lastError: string | null;
    certificate: { fingerprintSha256: string } | null;
  };
  health: {
    status: string;
    checks: Array<{ name: string; status: string; message: string; data?: Record<string, unknown> }>;
  };
}

const PASSWORD = "correct horse battery staple";

/**
 * Healthy, except that a busy test machine may make `resources` warn about CPU load: that says
 * nothing about the notebook server, and the tests must not depend on the host's load.
 */
function healthy(s: Status): boolean {
  return (
    s.health.checks.every(
      (c) => c.status === "pass" || (c.name === "resources" && c.status === "warn" && /load/.test(c.message)),
    ) && s.notebook.state === "running"
  );
}
const status = (dataDir: string) => agentJson<Status>(["status", "--data-dir", dataDir]);
const started: RunningAgent[] = [];

async function up(dataDir: string, port: number, options: Parameters<typeof startAgent>[2] = {}) {
  const agent = await startAgent(dataDir, port, options);
  started.push(agent);
  return agent;
}

async function uidOf(pid: number): Promise<number> {
  const text = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/^Uid:\s+(\d+)/m.exec(text)?.[1]);
}

afterAll(async () => {
  for (const agent of started) await stopAgent(agent, "SIGINT").catch(() => undefined);
});

describe("nbfleet-agent up", () => {
  let dataDir: string;
  let port: number;
  let agent: RunningAgent;

  beforeAll(async () => {
    dataDir = makeDataDir();
    port = await freePort();
    agent = await up(dataDir, port, { password: PASSWORD });
  });

  it("serves a healthy, password-protected notebook over TLS and reports its certificate truly", async () => {
    expect(agent.summary.how).toBe("started");
    expect(agent.summary.url).toBe(`https://127.0.0.1:${port}/`);
    const first = await waitFor("healthy", async () => {
      const s = await status(dataDir);
      return healthy(s) && s;
    });
    expect(first.agent).toBe("running");
    expect(first.notebook.state).toBe("running");
    expect(["healthy", "degraded"]).toContain(first.health.status);
    expect(first.health.checks.map((c) => c.name)).toEqual(
      expect.arrayContaining(["process", "https", "auth", "tls", "resources", "activity"]),
    );
    expect(await login(port, PASSWORD)).toBe(302);
    expect(await login(port, "not the password")).toBe(401);
    expect(await servedFingerprint(port)).toBe(agent.summary.fingerprintSha256);
    expect(first.notebook.certificate?.fingerprintSha256).toBe(agent.summary.fingerprintSha256);
  });

  it("runs the server as the unprivileged nbfleet user, never root", async () => {
    expect(await uidOf(agent.summary.pid)).not.toBe(0);
  });

  it("keeps the plaintext password off the disk", async () => {
    const { stdout } = await agentCli(["logs", "--data-dir", dataDir, "-n", "1000"]);
    const files = [
      dataPaths(dataDir).settingsFile,
      path.join(dataPaths(dataDir).configDir, "jupyter_notebook_config.py"),
    ];
    for (const file of files) expect(await readFile(file, "utf8")).not.toContain(PASSWORD);
    expect(stdout).not.toContain(PASSWORD);
    const agentLog = await agentCli(["logs", "--data-dir", dataDir, "--source", "agent", "-n", "1000"]);
    expect(agentLog.stdout).toContain('"kind":"notebook.started"');
    expect(agentLog.stdout).not.toContain(PASSWORD);
  });

  it("proves the kernel works: the deep check runs a cell and gets a PNG plot back", async () => {
    const report = await agentJson<Status>(["check", "--data-dir", dataDir]);
    const kernel = report.health.checks.find((c) => c.name === "kernel");
    expect(kernel?.status, kernel?.message).toBe("pass");
    expect(Number(kernel?.data?.pngBytes)).toBeGreaterThan(1000);
  });

  it("brings a notebook killed with SIGKILL back with a new pid, counts it and records the event", async () => {
    const before = await status(dataDir);
    const oldPid = before.notebook.pid!;
    process.kill(oldPid, "SIGKILL");
    const after = await waitFor("a new healthy server", async () => {
      const s = await status(dataDir);
      return s.notebook.pid !== oldPid && healthy(s) && s;
    });
    expect(after.notebook.restarts).toBe(before.notebook.restarts + 1);
    const events = await agentJson<Array<{ kind: string }>>(["events", "--data-dir", dataDir]);
    expect(events.map((e) => e.kind)).toContain("notebook.crashed");
  });

  it("changes the password on the live server", async () => {
    const result = await agentCli(["password", "--data-dir", dataDir, "--stdin"], "a new passphrase\n");
    expect(result.code, result.stderr).toBe(0);
    await waitFor("healthy after the password change", async () => healthy(await status(dataDir)));
    expect(await login(port, "a new passphrase")).toBe(302);
    expect(await login(port, PASSWORD)).toBe(401);
  });

  it("rotates the certificate and serves the new one", async () => {
    const before = await servedFingerprint(port);
    const result = await agentCli(["certificate", "rotate", "--data-dir", dataDir]);
    expect(result.code, result.stderr).toBe(0);
    const s = await waitFor("healthy after rotation", async () => {
      const current = await status(dataDir);
      return healthy(current) && current;
    });
    const served = await servedFingerprint(port);
    expect(served).not.toBe(before);
    expect(s.notebook.certificate?.fingerprintSha256).toBe(served);
  });

  it("refuses controller.trust when it is pinned to no controller, and stores nothing", async () => {
    const pin = Array.from({ length: 32 }, () => "AB").join(":");
    const paths = dataPaths(dataDir);
    const outcome = await sendCommand(paths.controlSocket, "controller.trust", {
      pins: [{ certificateSha256: pin, keySha256: pin }],
    });
    expect(outcome).toMatchObject({ ok: false, error: { code: "NBF_TRUST_REFUSED" } });
    expect(outcome.ok ? "" : outcome.error.message).toMatch(/not pinned to its controller's certificate/);
    expect(existsSync(paths.controllerTrust)).toBe(false);
  });

  it("survives the agent's death: the notebook keeps its pid and a new agent adopts it", async () => {
    const pid = (await status(dataDir)).notebook.pid!;
    agent.process.kill("SIGKILL");
    await new Promise((resolve) => agent.process.once("exit", resolve));
    expect(await isRunning(pid)).toBe(true);
    const offline = await status(dataDir);
    expect(offline.agent).toBe("not_running");
    expect(offline.notebook.pid).toBe(pid);

    agent = await up(dataDir, port);
    expect(agent.summary.how).toBe("adopted");
    expect(agent.summary.pid).toBe(pid);
    const s = await waitFor("healthy after adoption", async () => {
      const current = await status(dataDir);
      return healthy(current) && current;
    });
    expect(s.notebook.pid).toBe(pid);
  });
});

describe("nbfleet-agent up, when things go wrong", () => {
  it("puts a crash-looping server into backoff, then gives up as failed with the last log lines", async () => {
    const dataDir = makeDataDir();
    const port = await freePort();
    const restart = {
      initialBackoffMs: 500,
      maxBackoffMs: 2000,
      stableMs: 60_000,
      maxCrashes: 3,
      crashWindowMs: 120_000,
    };
    await writeFile(dataPaths(dataDir).settingsFile, JSON.stringify({ restart }));
    const agent = await up(dataDir, port, { password: PASSWORD });
    let pid = agent.summary.pid;
    for (let crash = 1; crash <= 3; crash++) {
      process.kill(pid, "SIGKILL");
      if (crash === 3) break;
      pid = (await waitFor("the restarted server", async () => {
        const s = await status(dataDir);
        return s.notebook.state === "running" && s.notebook.pid !== pid && s.notebook.pid;
      })) as number;
    }
    const failed = await waitFor("failed", async () => {
      const s = await status(dataDir);
      return s.notebook.state === "failed" && s;
    });
    expect(failed.health.status).toBe("unhealthy");
    expect(failed.notebook.lastError).toMatch(/3 crashes/);
    expect(failed.notebook.lastError).toMatch(/Last log lines/);
    const events = await agentJson<Array<{ kind: string; message: string }>>([
      "events",
      "--data-dir",
      dataDir,
    ]);
    const crashes = events.filter((e) => e.kind === "notebook.crashed");
    expect(crashes.map((e) => /restarting in (\d+) ms/.exec(e.message)?.[1])).toEqual(["500", "1000"]);
    expect(events.at(-1)?.kind).toBe("notebook.failed");
  });

  it("refuses a port that is taken, naming it, and never drifts to another port", async () => {
    const dataDir = makeDataDir();
    const blocker = net.createServer();
    const port = await new Promise<number>((resolve) =>
      blocker.listen(0, "127.0.0.1", () => resolve((blocker.address() as net.AddressInfo).port)),
    );
    try {
      const error = await up(dataDir, port, { password: PASSWORD }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AgentExit);
      expect((error as AgentExit).code).toBe(1);
      expect((error as AgentExit).stderr).toContain(
        `port ${port} on 127.0.0.1 is already in use by pid ${process.pid}`,
      );
      expect((error as AgentExit).stderr).toContain("NBF_PORT_IN_USE");
      expect(await readFile(dataPaths(dataDir).pidFile, "utf8").catch(() => null)).toBeNull();
    } finally {
      blocker.close();
    }
  });

  it("serves a notebook directory whose name holds quotes, backslashes and a newline without running it as code", async () => {
    const dataDir = makeDataDir();
    const port = await freePort();
    // The server's working directory is the notebook directory, so a relative canary lands there.
    const notebookDir = path.join(dataDir, `nb'; import os; os.system('touch pwned') #\\\n"x`);
    const canary = path.join(notebookDir, "pwned");
    const agent = await up(dataDir, port, { password: PASSWORD, args: ["--notebook-dir", notebookDir] });
    await writeFile(path.join(notebookDir, "marker.txt"), "here");
    const token = (await readFile(dataPaths(dataDir).agentTokenFile, "utf8")).trim();
    const { Agent, request } = await import("undici");
    const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
    const listing = await request(`https://127.0.0.1:${port}/api/contents`, {
      dispatcher,
      headers: { authorization: `token ${token}` },
    });
    const body = (await listing.body.json()) as { content: Array<{ name: string }> };
    await dispatcher.close();
    expect(body.content.map((c) => c.name)).toContain("marker.txt");
    expect(await readFile(canary).catch(() => null)).toBeNull();
    expect(agent.summary.health).not.toBe("unhealthy");
  });

  it("names the flag and the allowed range for a bad --port", async () => {
    const result = await agentCli(["up", "--data-dir", "/tmp/unused", "--port", "99999"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("--port must be an integer from 1 to 65535, got '99999'");
  });
});
