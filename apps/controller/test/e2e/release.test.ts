/**
 * The release an operator installs: `pnpm build` writes dist/nbfleet-<version>.tgz; here it is
 * built into a temporary directory, installed with `npm install -g --prefix <tmp>` (npm fetches
 * and builds the native addons, as on a fresh machine), and the installed `nbfleet up` is run
 * from an empty directory with its own data dir until the demo notebook serves. The release
 * runs on plain node: no tsx, no esbuild, and the agent artifact it serves is the one it
 * shipped with (nothing is built at run time). At the end everything it started is stopped.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { appendFile, chmod, mkdir, mkdtemp, readFile, readdir, readlink, rm, stat } from "node:fs/promises";
import { request } from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "@nbfleet/testkit/ports";
import { hasExited, stopChild, tsxArgs } from "@nbfleet/testkit/processes";
import { repoRoot } from "@nbfleet/testkit/repo";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const BUILD_TIMEOUT_MS = 180_000;
// better-sqlite3 compiles from source when its prebuilt binary cannot be downloaded.
const INSTALL_TIMEOUT_MS = 420_000;
const UP_TIMEOUT_MS = 300_000;

interface UpSummary {
  apiUrl: string;
  adminToken: string | null;
  demo: { url: string; password: string | null; vm: { notebook: { state: string | null } } } | null;
}

let workDir: string;
let prefix: string;
let installed: string;
let dataDir: string;
let tarball: string;
let controller: ChildProcess | undefined;
let output = "";
let summary: UpSummary;
let agentLauncher: number | undefined;
const timings: Record<string, number> = {};

/**
 * What the machine's own shell carries to reach the network: its TLS trust (a network that
 * inspects TLS adds its CA there; without it npm fails every fetch with SELF_SIGNED_CERT_IN_CHAIN
 * and retries for minutes) and its proxies.
 */
const MACHINE_NETWORK_ENV = [
  "NODE_EXTRA_CA_CERTS",
  "SSL_CERT_FILE",
  "SSL_CERT_DIR",
  "HTTP_PROXY",
  "HTTPS_PROXY",
  "NO_PROXY",
  "http_proxy",
  "https_proxy",
  "no_proxy",
];

/** The environment of a shell on a machine without a checkout: no NODE_OPTIONS, no tsx. */
function plainEnv(extra: Record<string, string> = {}): Record<string, string> {
  const network = Object.fromEntries(
    MACHINE_NETWORK_ENV.flatMap((name) => (process.env[name] ? [[name, process.env[name]]] : [])),
  );
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: process.env.HOME ?? "/root",
    LANG: "C.UTF-8",
    ...network,
    ...extra,
  };
}

beforeAll(
  async () => {
    workDir = await mkdtemp(path.join(tmpdir(), "nbf-release-"));
    // The sandboxed notebook user passes through the data dir (see sandbox-root.ts).
    await chmod(workDir, 0o755);
    const version = JSON.parse(
      await readFile(path.join(repoRoot, "apps/controller/package.json"), "utf8"),
    ).version;
    const outDir = path.join(workDir, "dist");
    let started = Date.now();
    const build = await run(
      process.execPath,
      tsxArgs(path.join(repoRoot, "packaging/src/main.ts"), ["--out", outDir]),
      { cwd: repoRoot, timeout: BUILD_TIMEOUT_MS },
    );
    timings.buildSec = (Date.now() - started) / 1000;
    tarball = path.join(outDir, `nbfleet-${version}.tgz`);
    expect(build.stdout).toContain(tarball);

    prefix = path.join(workDir, "prefix");
    const empty = path.join(workDir, "empty");
    await mkdir(empty);
    started = Date.now();
    await run(
      "npm",
      [
        "install",
        "-g",
        "--prefix",
        prefix,
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        tarball,
      ],
      { cwd: empty, env: plainEnv(), timeout: INSTALL_TIMEOUT_MS, maxBuffer: 16 * 2 ** 20 },
    ).catch((error: Error & { stderr?: string }) => {
      // npm's own words say why (a fetch refused, a compiler missing), not just "Command failed".
      throw new Error(`${error.message}\n${(error.stderr ?? "").slice(-4000)}`);
    });
    timings.installSec = (Date.now() - started) / 1000;
    installed = path.join(prefix, "lib", "node_modules", "nbfleet");

    dataDir = path.join(workDir, "data");
    await mkdir(dataDir, { mode: 0o755 });
    await chmod(dataDir, 0o755);
    started = Date.now();
    summary = await nbfleetUp(empty, `127.0.0.1:${await freePort()}`);
    timings.upSec = (Date.now() - started) / 1000;
    const launcher = await readFile(path.join(dataDir, "sandboxes", "demo", "install", "agent.pid"), "utf8");
    agentLauncher = Number.parseInt(launcher, 10);
    console.log(`release ${path.basename(tarball)}: ${JSON.stringify(timings)}`);
  },
  BUILD_TIMEOUT_MS + INSTALL_TIMEOUT_MS + UP_TIMEOUT_MS,
);

afterAll(async () => {
  if (controller && !hasExited(controller)) {
    await api("DELETE", "/v1/vms/demo").catch(() => undefined);
    await stopChild(controller, "SIGINT", 30_000);
  }
  // Whatever the orderly path missed goes now, so a failed run leaves nothing behind either.
  if (workDir) for (const pid of await processesUsing(workDir)) signal(pid, "SIGKILL");
  if (workDir) await rm(workDir, { recursive: true, force: true });
}, 120_000);

describe("the release tarball, installed with npm on plain node", () => {
  it("installs an nbfleet command whose dependencies are the native addons (and pg), not build tools", async () => {
    expect(await readlink(path.join(prefix, "bin", "nbfleet"))).toMatch(/nbfleet\/lib\/nbfleet\.mjs$/);
    const manifest = JSON.parse(await readFile(path.join(installed, "package.json"), "utf8"));
    const controllerDeps = Object.keys(
      JSON.parse(await readFile(path.join(repoRoot, "apps/controller/package.json"), "utf8")).dependencies,
    );
    const expected = ["better-sqlite3", "bufferutil", "@node-rs/argon2", "pg"].filter((d) =>
      controllerDeps.includes(d),
    );
    expect(Object.keys(manifest.dependencies).sort()).toEqual(expected.sort());
    const names = await installedPackageNames(path.join(installed, "node_modules"));
    expect(names).toEqual(expect.arrayContaining(expected));
    for (const tool of ["tsx", "esbuild", "typescript"]) expect(names).not.toContain(tool);
    expect(names.filter((n) => n.startsWith("@esbuild/"))).toEqual([]);
    const bundle = await readFile(path.join(installed, "lib", "nbfleet.mjs"), "utf8");
    expect(bundle.startsWith("#!/usr/bin/env node\n")).toBe(true);
    // The entry and the chunks it loads when a command needs them (the server's, for one).
    const chunks = (await readdir(path.join(installed, "lib"))).filter((f) => /^chunk-\w+\.mjs$/.test(f));
    expect(chunks.length).toBeGreaterThan(0);
    for (const file of ["nbfleet.mjs", ...chunks]) {
      const code = await readFile(path.join(installed, "lib", file), "utf8");
      expect(code, file).not.toMatch(/ESBUILD_BINARY_PATH|from "tsx|require\("tsx/);
    }
    expect(bundle).not.toMatch(/from "fastify"|function fastify\(/);
    const { stdout } = await run(path.join(prefix, "bin", "nbfleet"), ["--version"], { env: plainEnv() });
    expect(stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });

  it("nbfleet up from an empty directory serves the demo notebook", async () => {
    expect(summary.apiUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(summary.adminToken).toMatch(/^nbf_/);
    expect(summary.demo?.vm.notebook.state).toBe("running");
    const login = await httpsGet(`${summary.demo?.url}login`);
    expect(login.status).toBe(200);
    expect(login.body).toContain("password");
    const vm = await api<{ notebook: { state: string }; health: { status: string } }>("GET", "/v1/vms/demo");
    expect(vm.notebook.state).toBe("running");
  });

  it("runs on plain node with nothing loaded from a build tool, and serves the agent artifact it shipped", async () => {
    const pid = controller!.pid!;
    const argv = (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0").filter(Boolean);
    expect(path.basename(argv[0]!)).toBe("node");
    expect(argv.slice(1)).toEqual([path.join(prefix, "bin", "nbfleet"), "--json", "up"]);
    expect(path.basename(await readlink(`/proc/${pid}/exe`))).toMatch(/^node/);
    const environ = (await readFile(`/proc/${pid}/environ`, "utf8")).split("\0");
    expect(environ.filter((v) => v.startsWith("NODE_OPTIONS="))).toEqual([]);
    const maps = await readFile(`/proc/${pid}/maps`, "utf8");
    expect(maps).not.toMatch(/\/(tsx|esbuild|@esbuild)\//);
    expect(maps).toContain(path.join(installed, "node_modules", "better-sqlite3"));

    // Nothing was built at run time: no artifact cache in the data dir, and the served file is the shipped one.
    expect(await readdir(dataDir)).not.toContain("artifact");
    const shipped = JSON.parse(await readFile(path.join(installed, "lib", "agent", "artifact.json"), "utf8"));
    const response = await fetch(`${summary.apiUrl}/v1/agent/artifact`);
    expect(response.status).toBe(200);
    const served = Buffer.from(await response.arrayBuffer());
    expect(createHash("sha256").update(served).digest("hex")).toBe(shipped.sha256);
    expect(served.length).toBe(shipped.bytes);
  });

  it("serves the web console it shipped in lib/console", async () => {
    const index = await readFile(path.join(installed, "lib", "console", "index.html"), "utf8");
    const page = await fetch(`${summary.apiUrl}/vms/demo`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("default-src 'self'");
    expect(await page.text()).toBe(index);
    const asset = /src="(\/assets\/[^"]+\.js)"/.exec(index)?.[1];
    expect(asset).toBeDefined();
    const script = await fetch(`${summary.apiUrl}${asset}`, { headers: { "accept-encoding": "br" } });
    expect(script.status).toBe(200);
    expect(script.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    await script.arrayBuffer();
  });

  it("stops cleanly: the demo machine deleted, the controller exits 0, the agent is gone", async () => {
    await api("DELETE", "/v1/vms/demo");
    const child = controller!;
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    child.kill("SIGINT");
    expect(await exited).toBe(0);
    await waitFor("the demo agent to exit", async () => !(await alive(agentLauncher!)), 60_000);
    // Agent, notebook server, kernels: everything ran from inside the work dir.
    await waitFor(
      "no process of the run left",
      async () => (await processesUsing(workDir)).length === 0,
      60_000,
    );
    expect(await stat(path.join(dataDir, "sandboxes", "demo")).catch(() => null)).toBeNull();
  }, 120_000);

  it("refuses to start when the shipped agent artifact was altered, naming the file", async () => {
    await appendFile(path.join(installed, "lib", "agent", "nbfleet-agent.tar.gz"), "tampered");
    const result = await run(
      path.join(prefix, "bin", "nbfleet"),
      ["server", "--data-dir", path.join(workDir, "data-2"), "--listen", `127.0.0.1:${await freePort()}`],
      { env: plainEnv(), timeout: 60_000 },
    ).then(
      () => ({ code: 0, stderr: "" }),
      (error: { code?: number; stderr?: string }) => ({ code: error.code, stderr: error.stderr ?? "" }),
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/nbfleet-agent\.tar\.gz is not the one this release was built with/);
    expect(result.stderr).toContain("[NBF_RELEASE_ARTIFACT_INVALID]");
  }, 90_000);
});

/** `<prefix>/bin/nbfleet --json up` from `cwd`, resolved with its summary once the demo serves. */
function nbfleetUp(cwd: string, listen: string): Promise<UpSummary> {
  const child = spawn(path.join(prefix, "bin", "nbfleet"), ["--json", "up"], {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
    env: plainEnv({ NBFLEET_DATA_DIR: dataDir, NBFLEET_LISTEN: listen, NO_COLOR: "1" }),
  });
  controller = child;
  let stdout = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  return new Promise<UpSummary>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`no summary within ${UP_TIMEOUT_MS} ms: ${output}`)),
      UP_TIMEOUT_MS,
    );
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      try {
        resolve(JSON.parse(stdout) as UpSummary);
        clearTimeout(timer);
      } catch {
        // not complete yet
      }
    });
    child.once("exit", (code, sig) => {
      clearTimeout(timer);
      reject(new Error(`nbfleet up exited (${code ?? sig}) before its summary: ${output}${stdout}`));
    });
  });
}

async function api<T>(method: string, route: string): Promise<T> {
  const response = await fetch(`${summary.apiUrl}${route}`, {
    method,
    headers: { authorization: `Bearer ${summary.adminToken}` },
    signal: AbortSignal.timeout(120_000),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${route} answered ${response.status}: ${text}`);
  return (text ? JSON.parse(text) : undefined) as T;
}

/** The demo notebook's certificate is self-signed. */
function httpsGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { rejectUnauthorized: false, timeout: 30_000 }, (res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => {
        body += chunk.toString();
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** Every package under a node_modules tree, nested ones included (`@scope/name` for scoped). */
async function installedPackageNames(dir: string): Promise<string[]> {
  const names: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (!entry.isDirectory() || entry.name.startsWith(".")) continue;
    const scoped = entry.name.startsWith("@")
      ? (await readdir(path.join(dir, entry.name))).map((n) => `${entry.name}/${n}`)
      : [entry.name];
    for (const name of scoped) {
      names.push(name);
      names.push(...(await installedPackageNames(path.join(dir, name, "node_modules"))));
    }
  }
  return names;
}

/** Live processes whose command line names `dir` or whose working directory is inside it. */
async function processesUsing(dir: string): Promise<number[]> {
  const found: number[] = [];
  for (const name of await readdir("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid || !(await alive(pid))) continue;
    const cmdline = await readFile(`/proc/${pid}/cmdline`, "utf8").catch(() => "");
    const cwd = await readlink(`/proc/${pid}/cwd`).catch(() => "");
    if (cmdline.includes(dir) || cwd === dir || cwd.startsWith(`${dir}/`)) found.push(pid);
  }
  return found;
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Running (a zombie no longer counts). */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "");
  const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  return stat !== "" && state !== "Z";
}
