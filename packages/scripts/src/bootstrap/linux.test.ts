import { execFile, spawn } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import {
  appendFile,
  chmod,
  mkdir,
  mkdtemp,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import http from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { dataPaths } from "@nbfleet/agent";
import { generateReleaseKeyPair } from "@nbfleet/shared/artifact-signature";
import { makeTestCa, selfSignedPair } from "@nbfleet/testkit/test-ca";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AgentArtifact, buildAgentArtifact } from "../artifact/build.js";
import {
  AGENT_ENVIRONMENT,
  AGENT_NODE_FLAGS,
  linuxAgentArgv,
  linuxGuestLayout,
  renderLinuxBootstrap,
} from "./linux.js";
import type { LinuxBootstrapOptions } from "./options.js";
import { readPidFile } from "./sandbox-processes.js";

interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runScript(script: string, env: NodeJS.ProcessEnv = process.env): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("sh", [script], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk) => {
      stdout += chunk;
    });
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

/** Running and not a zombie (an orphan's exit is reaped by whatever pid 1 is, maybe never). */
function isAlive(pid: number): boolean {
  try {
    const state = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]?.[0];
    return state !== undefined && state !== "Z";
  } catch {
    return false;
  }
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const started: number[] = [];
const cleanup: string[] = [];
let artifact: AgentArtifact;
let server: http.Server;
let baseUrl: string;
const requests: Array<{ url: string; userAgent: string }> = [];

beforeAll(async () => {
  const outDir = await mkdtemp(path.join(tmpdir(), "nbfleet-bootstrap-artifact-"));
  cleanup.push(outDir);
  artifact = await buildAgentArtifact({ outDir });
  const bytes = await readFile(artifact.file);
  server = http.createServer((req, res) => {
    requests.push({ url: req.url ?? "", userAgent: req.headers["user-agent"] ?? "" });
    if (req.url !== "/v1/agent/artifact") {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/gzip", "content-length": bytes.length }).end(bytes);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 120_000);

afterAll(async () => {
  // The launcher leads its own session and process group: the group takes the agent with it.
  for (const pid of started) {
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      if (isAlive(pid)) process.kill(pid, "SIGKILL");
    }
  }
  await new Promise((resolve) => server.close(resolve));
  await Promise.all(cleanup.map((dir) => rm(dir, { recursive: true, force: true })));
});

/** What every bootstrap here fetches: the artifact this file serves, with its own token. */
function fromArtifactServer(bootstrapToken: string) {
  return {
    controllerUrl: baseUrl,
    artifactUrl: `${baseUrl}/v1/agent/artifact`,
    artifactSha256: artifact.sha256,
    bootstrapToken,
    notebookPort: 9999,
  };
}

async function sandbox(name: string, overrides: Partial<LinuxBootstrapOptions> = {}) {
  const root = await mkdtemp(path.join(tmpdir(), `nbfleet-sandbox-${name}-`));
  cleanup.push(root);
  const dataDir = overrides.dataDir ?? path.join(root, "agent");
  const options: LinuxBootstrapOptions = {
    mode: "sandbox",
    ...fromArtifactServer("bootstrap-token-0123456789"),
    dataDir,
    installDir: path.join(root, "install"),
    bindIp: "127.0.0.1",
    node: process.execPath,
    // A long-running agent command that needs neither Jupyter nor a controller: it copies
    // notebook.log to its own stdout, which the bootstrap sends to the agent log.
    agentArgs: ["logs", "--data-dir", dataDir, "--source", "notebook", "--follow"],
    ...overrides,
  };
  const script = path.join(root, "bootstrap.sh");
  await writeFile(script, renderLinuxBootstrap(options));
  return { root, options, script, layout: linuxGuestLayout(options.installDir), paths: dataPaths(dataDir) };
}

/** The launcher's pid from its pid file, which also records its start time (checked against /proc). */
async function startedPid(pidFile: string): Promise<number> {
  const record = await readPidFile(pidFile);
  if (!record) throw new Error(`no pid in ${pidFile}`);
  started.push(record.pid);
  const stat = await readFile(`/proc/${record.pid}/stat`, "utf8");
  expect(record.startTime).toBe(Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]));
  return record.pid;
}

/** The first child process of `parent`, from /proc. */
async function childOf(parent: number): Promise<number | undefined> {
  const text = await readFile(`/proc/${parent}/task/${parent}/children`, "utf8").catch(() => "");
  const first = text.trim().split(/\s+/)[0];
  return first ? Number(first) : undefined;
}

const where = (tool: string) => ["/usr/bin", "/bin"].map((dir) => path.join(dir, tool)).find(existsSync);

/** A PATH directory with what the bootstrap needs, but neither curl nor wget. */
async function toolsWithoutCurlOrWget(): Promise<string> {
  const tools = [
    ...["sh", "tar", "gzip", "sha256sum", "cut", "mkdir", "rm", "mv", "ln", "cat", "chmod", "readlink"],
    ...["mktemp", "grep", "head", "tail", "tr", "sleep", "setsid", "nohup", "ps", "uname", "env"],
  ];
  const bin = await mkdtemp(path.join(tmpdir(), "nbfleet-bin-"));
  cleanup.push(bin);
  for (const tool of tools) await symlink(where(tool)!, path.join(bin, tool));
  return bin;
}

/** The agent really runs: a line written to notebook.log shows up on its console. */
async function proveAgentRuns(
  paths: ReturnType<typeof dataPaths>,
  layout: ReturnType<typeof linuxGuestLayout>,
  marker: string,
) {
  await mkdir(paths.logsDir, { recursive: true });
  await appendFile(paths.notebookLog, `${marker}\n`);
  await waitFor(`"${marker}" in ${layout.consoleLog}`, async () =>
    (await readFile(layout.consoleLog, "utf8")).includes(marker) ? true : undefined,
  );
}

/** A cloud guest's settings, for what is only rendered (nothing here is downloaded). */
const SYSTEMD_GUEST: LinuxBootstrapOptions = {
  mode: "systemd",
  controllerUrl: "https://controller.example:7443",
  artifactUrl: "https://controller.example:7443/v1/agent/artifact",
  artifactSha256: "a".repeat(64),
  bootstrapToken: "token-123456",
  dataDir: "/var/lib/nbfleet/agent",
  installDir: "/opt/nbfleet",
  notebookPort: 9999,
  bindIp: "0.0.0.0",
};
describe("renderLinuxBootstrap in sandbox mode (the real script, run with sh)", () => {
  it("downloads, verifies, unpacks and starts the agent detached; a re-run changes nothing", async () => {
    const { script, layout, paths, options } = await sandbox("happy");
    const first = await runScript(script);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    expect(first.stdout).toContain(`nbfleet-bootstrap: checksum ok: sha256 ${artifact.sha256}`);
    expect(first.stdout).toContain("nbfleet-bootstrap: done");

    const pid = await startedPid(layout.pidFile);
    expect(isAlive(pid)).toBe(true);
    // The pidfile names the launcher's respawn loop; the agent is its child.
    const loop = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter(Boolean);
    expect(loop).toEqual(["sh", layout.launcher]);
    const agentPid = await waitFor("the agent under the launcher", async () => childOf(pid));
    const cmdline = (await readFile(`/proc/${agentPid}/cmdline`, "utf8")).split("\0").filter(Boolean);
    expect(cmdline).toEqual([layout.node, ...AGENT_NODE_FLAGS, layout.bundle, ...options.agentArgs!]);
    // setsid: the launcher leads its own session, so the caller's end does not take it along.
    const stat_ = (await readFile(`/proc/${pid}/stat`, "utf8")).split(") ")[1]!.split(" ");
    expect(Number(stat_[3])).toBe(pid);
    await proveAgentRuns(paths, layout, "first-start-marker");

    // Like systemd's Restart=always: a killed agent is started again by the loop.
    process.kill(agentPid, "SIGKILL");
    const respawned = await waitFor("a respawned agent", async () => {
      const child = await childOf(pid);
      return child !== undefined && child !== agentPid ? child : undefined;
    });
    expect(isAlive(respawned)).toBe(true);
    await proveAgentRuns(paths, layout, "after-respawn-marker");

    expect(await readlink(layout.current)).toBe(`versions/${artifact.sha256}`);
    expect(await readlink(layout.node)).toBe(process.execPath);
    expect(await readFile(layout.tokenFile, "utf8")).toBe("bootstrap-token-0123456789\n");
    expect((await stat(layout.tokenFile)).mode & 0o777).toBe(0o600);

    const downloads = requests.length;
    const second = await runScript(script);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain(`the agent is already running (pid ${pid}); nothing changed`);
    expect(requests.length).toBe(downloads);
    expect((await readPidFile(layout.pidFile))?.pid).toBe(pid);
  });

  it("restarts the agent when a setting changed on re-run", async () => {
    const { script, layout, options, paths } = await sandbox("rerun");
    expect((await runScript(script)).code).toBe(0);
    const oldPid = await startedPid(layout.pidFile);
    await writeFile(script, renderLinuxBootstrap({ ...options, bootstrapToken: "a-new-token-987654321" }));
    const again = await runScript(script);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`stopping the running agent (pid ${oldPid})`);
    const newPid = await startedPid(layout.pidFile);
    expect(newPid).not.toBe(oldPid);
    expect(isAlive(oldPid)).toBe(false);
    expect(await readFile(layout.tokenFile, "utf8")).toBe("a-new-token-987654321\n");
    await proveAgentRuns(paths, layout, "after-restart-marker");
  });

  it("installs a given version under versions/<version> with the release key; a re-run keeps the version an upgrade switched to", async () => {
    const { publicKeyPem } = generateReleaseKeyPair();
    const { script, layout } = await sandbox("versioned", {
      artifactVersion: "0.1.0-boot",
      releasePublicKeyPem: publicKeyPem,
    });
    const first = await runScript(script);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    await startedPid(layout.pidFile);
    expect(await readlink(layout.current)).toBe("versions/0.1.0-boot");
    expect(existsSync(layout.previous)).toBe(false);
    expect(await readFile(layout.releaseKeyFile, "utf8")).toBe(publicKeyPem);
    expect((await stat(layout.releaseKeyFile)).mode & 0o777).toBe(0o644);

    // What an upgrade leaves (upgrader.ts): another version beside it, current and previous switched.
    const upgraded = path.join(layout.versionsDir, "0.2.0");
    await mkdir(upgraded);
    await writeFile(
      path.join(upgraded, "nbfleet-agent.mjs"),
      await readFile(path.join(layout.versionsDir, "0.1.0-boot", "nbfleet-agent.mjs")),
    );
    await rm(layout.current);
    await symlink("versions/0.2.0", layout.current);
    await symlink("versions/0.1.0-boot", layout.previous);
    const downloads = requests.length;
    const again = await runScript(script);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(`sha256 ${artifact.sha256} was installed before; keeping versions/0.2.0`);
    expect(await readlink(layout.current)).toBe("versions/0.2.0");
    expect(await readlink(layout.previous)).toBe("versions/0.1.0-boot");
    expect(requests.length).toBe(downloads);
  });

  it("refuses an artifact whose checksum differs, naming both, and starts nothing", async () => {
    const wrong = "0".repeat(64);
    const { script, layout } = await sandbox("mismatch", { artifactSha256: wrong });
    const result = await runScript(script);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(`expected sha256 ${wrong}`);
    expect(result.stderr).toContain(`got sha256 ${artifact.sha256}`);
    expect(result.stderr).toContain("refusing to install it");
    expect(existsSync(layout.pidFile)).toBe(false);
    expect(existsSync(layout.current)).toBe(false);
    expect(existsSync(layout.launcher)).toBe(false);
    expect(existsSync(path.join(layout.versionsDir, wrong))).toBe(false);
  });

  it("cannot be made to run code by quotes, $(), backticks or newlines in values", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "nbfleet-inject-"));
    cleanup.push(root);
    const canary = path.join(root, "canary");
    const payloads = [
      `'$(touch ${canary})'`,
      `"\`touch ${canary}\`"`,
      `\n touch ${canary} \n`,
      `'; touch ${canary}; '`,
    ];
    const dataDir = path.join(root, `data ${payloads.join(" ")} end`);
    const token = `x'";$(touch\${IFS}${canary})\`touch\${IFS}${canary}\`'`;
    const { script, layout, paths } = await sandbox("inject", {
      dataDir,
      installDir: path.join(root, `install ${payloads[0]}${payloads[2]}`),
      bootstrapToken: token,
    });
    const result = await runScript(script);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    await startedPid(layout.pidFile);
    expect(existsSync(canary)).toBe(false);
    // The values arrived intact: the token file holds the token, the agent used the odd data dir.
    expect(await readFile(layout.tokenFile, "utf8")).toBe(`${token}\n`);
    await proveAgentRuns(paths, layout, "odd-paths-marker");
    expect(existsSync(canary)).toBe(false);
  });

  it("falls back to wget, then to Node.js, when curl is missing", async () => {
    const bin = await toolsWithoutCurlOrWget();
    const env = { ...process.env, PATH: bin };

    await symlink(where("wget")!, path.join(bin, "wget"));
    const viaWget = await sandbox("wget");
    expect((await runScript(viaWget.script, env)).code).toBe(0);
    await startedPid(viaWget.layout.pidFile);
    expect(requests.at(-1)?.userAgent).toMatch(/^Wget/);

    await rm(path.join(bin, "wget"));
    const viaNode = await sandbox("node-fetch");
    const result = await runScript(viaNode.script, env);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    await startedPid(viaNode.layout.pidFile);
    expect(requests.at(-1)?.userAgent).toBe("nbfleet-bootstrap");
    await proveAgentRuns(viaNode.paths, viaNode.layout, "node-fetch-marker");
  });

  it("stops with a clear message when Node.js is older than 20", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "nbfleet-oldnode-"));
    cleanup.push(root);
    const fakeNode = path.join(root, "node");
    await writeFile(fakeNode, `#!/bin/sh\nif [ "$1" = --version ]; then echo v18.19.1; else printf 18; fi\n`);
    await chmod(fakeNode, 0o755);
    const { script, layout } = await sandbox("oldnode", { node: fakeNode });
    const result = await runScript(script);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(
      `Node.js >= 20 is required to run the agent; found v18.19.1 for '${fakeNode}'`,
    );
    expect(existsSync(layout.pidFile)).toBe(false);
  });
});

describe("renderLinuxBootstrap and secrets (the real script, run with sh)", () => {
  const HASH = "argon2:$argon2id$v=19$m=10240,t=10,p=8$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA";
  const ADMIN_TOKEN = "nbf_admin-token-that-must-stay-home-0123";
  const SHELL_SET = ["PWD", "OLDPWD", "SHLVL", "_"];

  it("hands the password hash over in a 0600 file and gives the agent none of the caller's environment", async () => {
    const { script, layout } = await sandbox("secrets", { passwordHash: HASH });
    const result = await runScript(script, {
      ...process.env,
      NBFLEET_ADMIN_TOKEN: ADMIN_TOKEN,
      LANG: "C.UTF-8",
    });
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(await readFile(layout.passwordHashFile, "utf8")).toBe(`${HASH}\n`);
    expect((await stat(layout.passwordHashFile)).mode & 0o777).toBe(0o600);
    expect(await readFile(layout.launcher, "utf8")).not.toContain("argon2");
    const launcher = await startedPid(layout.pidFile);
    const agent = await waitFor("the agent under the launcher", async () => childOf(launcher));
    for (const pid of [launcher, agent]) {
      const environ = (await readFile(`/proc/${pid}/environ`, "utf8")).split("\0");
      expect(environ.some((entry) => entry.includes(ADMIN_TOKEN))).toBe(false);
      expect(environ).toContain(`PATH=${process.env.PATH}`);
      expect(environ).toContain("LANG=C.UTF-8");
      // Besides the allowed variables, only what sh itself sets (PWD, OLDPWD after the launcher's cd).
      const names = environ.filter(Boolean).map((entry) => entry.split("=")[0]!);
      expect(names.filter((name) => !AGENT_ENVIRONMENT.includes(name) && !SHELL_SET.includes(name))).toEqual(
        [],
      );
      expect(await readFile(`/proc/${pid}/cmdline`, "utf8")).not.toContain("argon2");
    }
  });

  it("puts the hash file, never the hash, on the agent's command line (Linux and its launcher)", () => {
    const argv = linuxAgentArgv({ ...SYSTEMD_GUEST, passwordHash: HASH });
    expect(argv.join(" ")).toContain("--password-hash-file /opt/nbfleet/password-hash");
    expect(argv.join(" ")).not.toContain("argon2");
    expect(argv).not.toContain("--password-hash");
  });
});

describe("renderLinuxBootstrap and the controller's TLS (a real HTTPS server)", () => {
  let tlsServer: https.Server;
  let tlsBase: string;
  const served = { cert: "", key: "", fingerprint: "" };
  const other = { cert: "", fingerprint: "" };
  let tlsRequests = 0;

  async function selfSigned(dir: string, name: string) {
    const { cert, key } = await selfSignedPair(dir, name);
    const pem = await readFile(cert, "utf8");
    return {
      cert: pem,
      key: await readFile(key, "utf8"),
      fingerprint: new X509Certificate(pem).fingerprint256,
    };
  }

  beforeAll(async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "nbfleet-bootstrap-tls-"));
    cleanup.push(dir);
    Object.assign(served, await selfSigned(dir, "controller"));
    Object.assign(other, await selfSigned(dir, "impostor"));
    const bytes = await readFile(artifact.file);
    tlsServer = https.createServer({ cert: served.cert, key: served.key }, (req, res) => {
      tlsRequests += 1;
      if (req.url !== "/v1/agent/artifact") {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-length": bytes.length }).end(bytes);
    });
    await new Promise<void>((resolve) => tlsServer.listen(0, "127.0.0.1", resolve));
    tlsBase = `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => tlsServer.close(() => resolve())));

  const over = (trust: Partial<LinuxBootstrapOptions>) => ({
    controllerUrl: tlsBase,
    artifactUrl: `${tlsBase}/v1/agent/artifact`,
    ...trust,
  });

  it("never switches verification off in what it renders", async () => {
    const { options } = await sandbox("render-tls");
    const pinned = { controllerFingerprint: "ab".repeat(32), controllerCertPem: served.cert };
    for (const trust of [pinned, { controllerCaPem: served.cert }, {}]) {
      const script = renderLinuxBootstrap({ ...options, ...over(trust) });
      expect(script).not.toMatch(
        /--insecure|--no-check-certificate|NODE_TLS_REJECT_UNAUTHORIZED|rejectUnauthorized|\s-k\s/,
      );
    }
  });

  it("downloads from the controller with the pinned fingerprint, and sends nothing to another certificate", async () => {
    const pinned = await sandbox(
      "pinned",
      over({ controllerFingerprint: served.fingerprint, controllerCertPem: served.cert }),
    );
    const before = tlsRequests;
    const ok = await runScript(pinned.script);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`checksum ok: sha256 ${artifact.sha256}`);
    expect(tlsRequests).toBe(before + 1);
    await startedPid(pinned.layout.pidFile);

    // The controller's certificate carried, but another pin; then another certificate and its pin.
    for (const [name, certPem, detail] of [
      ["pin-mismatch", served.cert, `its certificate has SHA-256 ${served.fingerprint}`],
      ["cert-mismatch", other.cert, "its certificate is not the one carried with the pin"],
    ] as const) {
      const refused = await sandbox(
        name,
        over({ controllerFingerprint: other.fingerprint, controllerCertPem: certPem }),
      );
      const bad = await runScript(refused.script);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toContain(detail);
      expect(bad.stderr).toContain(`but ${other.fingerprint} is pinned; nothing was sent to it`);
      expect(bad.stderr).toContain("the controller's certificate is not the trusted one");
      expect(tlsRequests).toBe(before + 1);
      expect(existsSync(refused.layout.pidFile)).toBe(false);
      expect(existsSync(refused.layout.current)).toBe(false);
    }
  });

  it("pins a controller certificate issued by a CA the guest does not know", async () => {
    const leaf = await (await makeTestCa()).issueServer();
    const bytes = await readFile(artifact.file);
    const issued = https.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (_req, res) => {
      res.writeHead(200, { "content-length": bytes.length }).end(bytes);
    });
    await new Promise<void>((resolve) => issued.listen(0, "127.0.0.1", resolve));
    try {
      const base = `https://127.0.0.1:${(issued.address() as AddressInfo).port}`;
      const pinned = await sandbox("pinned-issued", {
        controllerUrl: base,
        artifactUrl: `${base}/v1/agent/artifact`,
        controllerFingerprint: new X509Certificate(leaf.certPem).fingerprint256,
        controllerCertPem: leaf.certPem,
      });
      const ok = await runScript(pinned.script);
      expect(ok.stderr).toBe("");
      expect(ok.code).toBe(0);
      await startedPid(pinned.layout.pidFile);
    } finally {
      issued.closeAllConnections();
      await new Promise<void>((resolve) => issued.close(() => resolve()));
    }
  });

  it("trusts only the given CA: the controller's own passes, another CA is refused", async () => {
    const trusted = await sandbox("ca-ok", over({ controllerCaPem: served.cert }));
    const before = tlsRequests;
    const ok = await runScript(trusted.script);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(tlsRequests).toBe(before + 1);
    await startedPid(trusted.layout.pidFile);

    const untrusted = await sandbox("ca-other", over({ controllerCaPem: other.cert }));
    const bad = await runScript(untrusted.script);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/could not download .*\/v1\/agent\/artifact/);
    expect(tlsRequests).toBe(before + 1);
    expect(existsSync(untrusted.layout.pidFile)).toBe(false);
  });

  it("without curl and wget, Node.js trusts only the given CA too", async () => {
    const env = { ...process.env, PATH: await toolsWithoutCurlOrWget() };
    const before = tlsRequests;
    const trusted = await sandbox("node-ca-ok", over({ controllerCaPem: served.cert }));
    const ok = await runScript(trusted.script, env);
    expect(ok.stderr).toBe("");
    expect(ok.code).toBe(0);
    expect(tlsRequests).toBe(before + 1);
    await startedPid(trusted.layout.pidFile);

    const untrusted = await sandbox("node-ca-other", over({ controllerCaPem: other.cert }));
    const bad = await runScript(untrusted.script, env);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("the controller's certificate is not the trusted one");
    expect(tlsRequests).toBe(before + 1);
  });
});

describe("renderLinuxBootstrap in systemd mode (systemctl and nft stubbed on PATH)", () => {
  it("installs the unit and the port redirect, enables and starts them; a re-run only starts", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "nbfleet-systemd-"));
    cleanup.push(root);
    const bin = path.join(root, "bin");
    const calls = path.join(root, "calls");
    await mkdir(bin);
    for (const tool of ["systemctl", "nft"]) {
      await writeFile(path.join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> '${calls}'\n`);
      await chmod(path.join(bin, tool), 0o755);
    }
    const unitDir = path.join(root, "units");
    await mkdir(unitDir);
    const options: LinuxBootstrapOptions = {
      mode: "systemd",
      ...fromArtifactServer("bootstrap-token-systemd-1"),
      dataDir: path.join(root, "var/agent"),
      installDir: path.join(root, "opt/nbfleet"),
      publicPort: 8443,
      bindIp: "0.0.0.0",
      runAs: "azureuser",
      systemdUnitDir: unitDir,
    };
    const script = path.join(root, "bootstrap.sh");
    await writeFile(script, renderLinuxBootstrap(options));
    const env = { ...process.env, PATH: `${bin}:${process.env.PATH}` };

    const first = await runScript(script, env);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const layout = linuxGuestLayout(options.installDir);
    const unit = await readFile(path.join(unitDir, "nbfleet-agent.service"), "utf8");
    expect(unit).toContain(`ExecStart=/bin/sh ${layout.launcher}\n`);
    expect(unit).toMatch(/^Restart=always$/m);
    // The launcher passes SIGTERM on; the notebook server is in a scope of its own (--systemd-scope).
    expect(unit).toMatch(/^KillMode=mixed$/m);
    // systemd's own parser: unknown keys or a bad ExecStart make this exit non-zero.
    await promisify(execFile)("systemd-analyze", ["verify", path.join(unitDir, "nbfleet-agent.service")]);
    const rules = await readFile(path.join(options.installDir, "port-redirect.nft"), "utf8");
    expect(rules).toContain("tcp dport 8443 redirect to :9999");
    const redirect = await readFile(path.join(unitDir, "nbfleet-port-redirect.service"), "utf8");
    expect(redirect).toContain(`ExecStart=nft -f ${path.join(options.installDir, "port-redirect.nft")}`);
    const launcher = await readFile(layout.launcher, "utf8");
    expect(launcher).toContain(`--controller ${baseUrl} --bootstrap-token-file ${layout.tokenFile}`);
    expect(launcher).toContain("--run-as azureuser");
    expect((await readFile(calls, "utf8")).trim().split("\n")).toEqual([
      "systemctl daemon-reload",
      "systemctl enable nbfleet-port-redirect.service",
      "systemctl restart nbfleet-port-redirect.service",
      "systemctl daemon-reload",
      "systemctl enable nbfleet-agent.service",
      "systemctl restart nbfleet-agent.service",
    ]);

    await writeFile(calls, "");
    const second = await runScript(script, env);
    expect(second.code).toBe(0);
    expect((await readFile(calls, "utf8")).trim().split("\n")).toContain(
      "systemctl start nbfleet-agent.service",
    );
    expect(await readFile(calls, "utf8")).not.toContain("restart nbfleet-agent.service");
  });
});

describe("linuxAgentArgv", () => {
  it("starts `up` against the controller with the token file and the trust anchor", () => {
    expect(
      linuxAgentArgv({
        ...SYSTEMD_GUEST,
        controllerFingerprint: "ab".repeat(32),
        allowRoot: true,
        hostnames: ["a.b"],
      }),
    ).toEqual([
      "/opt/nbfleet/current/nbfleet-agent.mjs",
      ...["up", "--data-dir", "/var/lib/nbfleet/agent", "--port", "9999", "--ip", "0.0.0.0"],
      ...["--controller", "https://controller.example:7443"],
      ...["--bootstrap-token-file", "/opt/nbfleet/bootstrap-token"],
      ...["--controller-fingerprint", "ab".repeat(32), "--allow-root", "--hostname", "a.b"],
      "--systemd-scope",
    ]);
    const withCa = linuxAgentArgv({ ...SYSTEMD_GUEST, controllerCaPem: "-----BEGIN CERTIFICATE-----\nx\n" });
    expect(withCa.join(" ")).toContain("--controller-ca /opt/nbfleet/controller-ca.pem");
  });

  it("lets the agent upgrade itself when the release key is given: --install-dir and --release-key-file", () => {
    const { publicKeyPem } = generateReleaseKeyPair();
    const sandboxArgv = linuxAgentArgv({
      ...SYSTEMD_GUEST,
      mode: "sandbox",
      installDir: "/srv/sandbox/install",
      releasePublicKeyPem: publicKeyPem,
    });
    expect(sandboxArgv.slice(-4)).toEqual([
      ...["--install-dir", "/srv/sandbox/install"],
      ...["--release-key-file", "/srv/sandbox/install/release-key.pub"],
    ]);
    expect(sandboxArgv).not.toContain("--systemd-scope");
    const systemdArgv = linuxAgentArgv({ ...SYSTEMD_GUEST, releasePublicKeyPem: publicKeyPem });
    expect(systemdArgv.join(" ")).toContain(
      "--install-dir /opt/nbfleet --release-key-file /opt/nbfleet/release-key.pub --systemd-scope",
    );
    expect(linuxAgentArgv(SYSTEMD_GUEST)).not.toContain("--install-dir");
    const rendered = renderLinuxBootstrap({
      ...SYSTEMD_GUEST,
      releasePublicKeyPem: publicKeyPem,
      artifactVersion: "1.2.3",
    });
    expect(rendered).toContain("NBF_ARTIFACT_VERSION='1.2.3'");
    expect(rendered).toContain(`NBF_RELEASE_KEY_PEM='${publicKeyPem.trimEnd()}'`);
    expect(() => renderLinuxBootstrap({ ...SYSTEMD_GUEST, artifactVersion: "1.2" })).toThrow(
      /artifactVersion/,
    );
    expect(() => renderLinuxBootstrap({ ...SYSTEMD_GUEST, releasePublicKeyPem: "not a key" })).toThrow(
      /releasePublicKeyPem/,
    );
  });

  it("refuses bad settings before rendering, naming the field", () => {
    expect(() => renderLinuxBootstrap({ ...SYSTEMD_GUEST, artifactSha256: "XYZ" })).toThrow(/artifactSha256/);
    expect(() => renderLinuxBootstrap({ ...SYSTEMD_GUEST, controllerUrl: "file:///etc/passwd" })).toThrow(
      /controllerUrl/,
    );
    expect(() => renderLinuxBootstrap({ ...SYSTEMD_GUEST, bootstrapToken: "has space 1234" })).toThrow(
      /bootstrapToken/,
    );
    expect(() => renderLinuxBootstrap({ ...SYSTEMD_GUEST, installDir: "/opt/nb fleet" })).toThrow(
      /installDir/,
    );
    expect(() => renderLinuxBootstrap({ ...SYSTEMD_GUEST, runAs: "nb", allowRoot: true })).toThrow(
      /runAs and allowRoot/,
    );
    expect(() =>
      renderLinuxBootstrap({
        ...SYSTEMD_GUEST,
        controllerCaPem: "-----BEGIN CERTIFICATE-----",
        controllerFingerprint: "ab".repeat(32),
      }),
    ).toThrow(/at most one/);
    expect(() => renderLinuxBootstrap({ ...SYSTEMD_GUEST, controllerFingerprint: "ab".repeat(32) })).toThrow(
      /controllerFingerprint and controllerCertPem: give both/,
    );
    expect(() => renderLinuxBootstrap({ ...SYSTEMD_GUEST, mode: "sandbox", publicPort: 443 })).toThrow(
      /publicPort/,
    );
  });
});

describe("renderLinuxBootstrap with a certificate from an ACME CA", () => {
  const ACME = {
    mode: "acme" as const,
    hostname: "nb1.westeurope.cloudapp.azure.com",
    directoryUrl: "https://acme-v02.api.letsencrypt.org/directory",
    email: "ops@example.com",
    challenge: "http-01" as const,
    challengePort: 80,
  };

  it("gives the agent the --certificate-mode acme and --acme-* flags, the CA as a file", () => {
    const argv = linuxAgentArgv({
      ...SYSTEMD_GUEST,
      certificate: { ...ACME, caPem: "-----BEGIN CERTIFICATE-----\nx\n" },
    });
    expect(argv.slice(argv.indexOf("--certificate-mode"), argv.indexOf("--systemd-scope"))).toEqual([
      ...["--certificate-mode", "acme", "--acme-hostname", "nb1.westeurope.cloudapp.azure.com"],
      ...[
        "--acme-directory",
        "https://acme-v02.api.letsencrypt.org/directory",
        "--acme-email",
        "ops@example.com",
      ],
      ...[
        "--acme-ca-file",
        "/opt/nbfleet/acme-ca.pem",
        "--acme-challenge",
        "http-01",
        "--acme-challenge-port",
        "80",
      ],
    ]);
    // No e-mail, no CA: neither flag; no certificate: self-signed, no flag at all.
    const bare = linuxAgentArgv({
      ...SYSTEMD_GUEST,
      certificate: { ...ACME, email: null, challenge: "tls-alpn-01", challengePort: 8443 },
    });
    expect(bare).not.toContain("--acme-email");
    expect(bare).not.toContain("--acme-ca-file");
    expect(bare.join(" ")).toContain("--acme-challenge tls-alpn-01 --acme-challenge-port 8443");
    expect(linuxAgentArgv(SYSTEMD_GUEST).join(" ")).not.toMatch(/--acme|--certificate-mode/);
    expect(renderLinuxBootstrap(SYSTEMD_GUEST)).toContain("NBF_ACME_CA_PEM=''");
  });

  it("writes the ACME server's CA 0644 to <install>/acme-ca.pem, literally, and changes nothing on a re-run", async () => {
    const root = await mkdtemp(path.join(tmpdir(), "nbfleet-acme-ca-"));
    cleanup.push(root);
    const canary = path.join(root, "canary");
    const caPem = `${(await makeTestCa("ACME TLS CA")).caPem.trimEnd()}\n$(touch ${canary})'\`touch ${canary}\`'\n`;
    const { script, layout } = await sandbox("acme-ca", { certificate: { ...ACME, caPem } });
    const first = await runScript(script);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    await startedPid(layout.pidFile);
    expect(await readFile(layout.acmeCaFile, "utf8")).toBe(caPem);
    expect((await stat(layout.acmeCaFile)).mode & 0o777).toBe(0o644);
    expect(existsSync(canary)).toBe(false);
    const again = await runScript(script);
    expect(again.stdout).toContain("nothing changed");
  });

  it("refuses hostile or conflicting certificate settings before rendering, naming the field", () => {
    const bad =
      (certificate: Record<string, unknown>, extra: Partial<LinuxBootstrapOptions> = {}) =>
      () =>
        renderLinuxBootstrap({
          ...SYSTEMD_GUEST,
          ...extra,
          certificate: { ...ACME, ...certificate } as LinuxBootstrapOptions["certificate"],
        });
    expect(bad({ hostname: "nb1.example.org; touch /tmp/x" })).toThrow(/certificate\.hostname/);
    expect(bad({ hostname: "localhost" })).toThrow(/certificate\.hostname/);
    expect(bad({ directoryUrl: "http://acme.example/dir" })).toThrow(/certificate\.directoryUrl/);
    expect(bad({ directoryUrl: "https://acme.example/$(reboot)" })).toThrow(/certificate\.directoryUrl/);
    expect(bad({ directoryUrl: "https://acme.example/dir x" })).toThrow(/certificate\.directoryUrl/);
    expect(bad({ email: "ops@example.com'`reboot`" })).toThrow(/certificate\.email/);
    expect(bad({ email: "no-at-sign" })).toThrow(/certificate\.email/);
    expect(bad({ caPem: "not a certificate" })).toThrow(/certificate\.caPem/);
    expect(bad({ challenge: "dns-01" })).toThrow(/certificate\.challenge/);
    expect(bad({ challengePort: 0 })).toThrow(/certificate\.challengePort/);
    expect(bad({ mode: "self-signed" })).toThrow(/certificate\.mode/);
    expect(bad({ extra: "field" })).toThrow(/certificate/);
    expect(bad({ challengePort: 9999 })).toThrow(
      /certificate\.challengePort: 9999 is the notebook's own port \(notebookPort\)/,
    );
    expect(bad({ challenge: "tls-alpn-01", challengePort: 443 }, { publicPort: 443 })).toThrow(
      /certificate\.challengePort: 443 is redirected to the notebook \(publicPort\)/,
    );
  });
});
