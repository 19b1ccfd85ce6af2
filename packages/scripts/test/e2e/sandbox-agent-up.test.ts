/**
 * The whole guest path of the local provider, for real: the bootstrap (sandbox mode, its own
 * `up` command line) fetches the built artifact over HTTP, checks it and starts the bundled
 * agent, which installs nothing (Debian's Jupyter is there), serves the real notebook server
 * over TLS and dials the controller URL it was given.
 */
import { execFile, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmod, readFile, rm, stat, writeFile } from "node:fs/promises";
import { mkdtemp } from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { dataPaths } from "@nbfleet/agent";
import { freePort } from "@nbfleet/testkit/ports";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentArtifact, buildAgentArtifact } from "../../src/artifact/build.js";
import { linuxGuestLayout, renderLinuxBootstrap } from "../../src/bootstrap/linux.js";

const run = promisify(execFile);

let root: string;
let artifact: AgentArtifact;
let server: http.Server;
let baseUrl: string;
const upgrades: string[] = [];
let agentPid: number | undefined;

function getApi(port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(
      { host: "127.0.0.1", port, path: "/api", rejectUnauthorized: false, timeout: 2000 },
      (res) => {
        let body = "";
        res.on("data", (chunk) => {
          body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
  });
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), "nbfleet-sandbox-up-"));
  // As root the agent runs the notebook as the unprivileged `nbfleet` user, who must reach the data dir.
  await chmod(root, 0o755);
  artifact = await buildAgentArtifact({ outDir: path.join(root, "artifact") });
  const bytes = await readFile(artifact.file);
  // Stands in for the controller: serves the artifact and notes the agent's WebSocket dial.
  server = http.createServer((req, res) => {
    if (req.url === "/v1/agent/artifact") res.writeHead(200).end(bytes);
    else res.writeHead(404).end();
  });
  server.on("upgrade", (req, socket) => {
    upgrades.push(req.url ?? "");
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  if (agentPid !== undefined) {
    // SIGINT stops agent and notebook; the launcher's process group goes with SIGKILL if it lingers.
    const pid = agentPid;
    const running = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    try {
      process.kill(pid, "SIGINT");
    } catch {}
    const deadline = Date.now() + 20_000;
    while (running() && Date.now() < deadline) await sleep(100);
    try {
      process.kill(-pid, "SIGKILL");
    } catch {}
  }
  await new Promise((resolve) => server.close(resolve));
  await rm(root, { recursive: true, force: true });
});

describe("sandbox bootstrap → bundled agent → real notebook server", () => {
  it("serves the notebook over TLS with the given password hash and dials the controller", async () => {
    const port = await freePort();
    const salt = randomBytes(6).toString("hex");
    const password = "sandbox-e2e-password";
    const passwordHash = `sha1:${salt}:${createHash("sha1")
      .update(password + salt)
      .digest("hex")}`;
    const dataDir = path.join(root, "agent");
    const installDir = path.join(root, "install");
    const script = path.join(root, "bootstrap.sh");
    await writeFile(
      script,
      renderLinuxBootstrap({
        mode: "sandbox",
        controllerUrl: baseUrl,
        artifactUrl: `${baseUrl}/v1/agent/artifact`,
        artifactSha256: artifact.sha256,
        bootstrapToken: "e2e-bootstrap-token-42",
        dataDir,
        installDir,
        notebookPort: port,
        bindIp: "127.0.0.1",
        node: process.execPath,
        passwordHash,
      }),
    );
    const result = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn("sh", [script], { stdio: ["ignore", "pipe", "pipe"] });
      let output = "";
      child.stdout.on("data", (chunk) => {
        output += chunk;
      });
      child.stderr.on("data", (chunk) => {
        output += chunk;
      });
      child.on("close", (code) => resolve({ code, output }));
    });
    expect(result.output).toContain("nbfleet-bootstrap: agent started");
    expect(result.code).toBe(0);
    const layout = linuxGuestLayout(installDir);
    // The pid file says "PID STARTTIME".
    agentPid = Number((await readFile(layout.pidFile, "utf8")).trim().split(/\s+/)[0]);
    // The hash was handed over in a 0600 file; no command line shows it.
    expect(await readFile(layout.passwordHashFile, "utf8")).toBe(`${passwordHash}\n`);
    expect((await stat(layout.passwordHashFile)).mode & 0o777).toBe(0o600);
    expect(await readFile(layout.launcher, "utf8")).toContain(
      `--password-hash-file ${layout.passwordHashFile}`,
    );
    expect(await readFile(layout.launcher, "utf8")).not.toContain(passwordHash);

    const api = await waitFor(
      `https://127.0.0.1:${port}/api`,
      async () => {
        const response = await getApi(port);
        return response.status === 200 ? response : undefined;
      },
      90_000,
    );
    expect(JSON.parse(api.body).version).toMatch(/^\d+\.\d+/);
    await waitFor(
      "the agent to dial the controller",
      async () => (upgrades.length > 0 ? true : undefined),
      30_000,
    );

    const bundle = layout.bundle;
    const status = await run(process.execPath, [bundle, "status", "--data-dir", dataDir, "--json"]).catch(
      (error: { stdout: string }) => ({ stdout: error.stdout }),
    );
    const state = JSON.parse(status.stdout);
    expect(state.agent).toBe("running");
    expect(state.notebook.state).toBe("running");
    expect(state.notebook.certificate.fingerprintSha256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);

    // Ctrl-C stops the agent and the notebook server with it: nothing is left behind.
    const notebookPid = state.notebook.pid as number;
    process.kill(agentPid, "SIGINT");
    await waitFor(
      "the notebook server to stop",
      async () => {
        try {
          process.kill(notebookPid, 0);
          const stat = await readFile(`/proc/${notebookPid}/stat`, "utf8");
          return stat.split(") ")[1]?.startsWith("Z") ? true : undefined;
        } catch {
          return true;
        }
      },
      30_000,
    );
    expect(await readFile(dataPaths(dataDir).agentLog, "utf8")).not.toBe("");
  }, 180_000);
});
