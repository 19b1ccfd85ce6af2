/**
 * Local machines are isolated from each other, for real: `nbfleet server` as root with the local
 * provider, two sandboxes A and B booted through the bootstrap with the bundled agent and
 * Debian's Jupyter. Code run by a kernel on A, and commands in a terminal on A, try what a
 * hostile notebook user would: read B's TLS key, agent token, config (with the password hash)
 * and launcher files, list B's sandbox and the sandbox root, call B's Jupyter API with B's
 * agent token, signal B's notebook, agent and launcher. Every one is refused, while A reads
 * its own key, signals its own server, and its owner logs in with the password and runs cells.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { readFile, readdir, realpath, stat } from "node:fs/promises";
import https from "node:https";
import path from "node:path";
import { KernelChannel, apiUrl, requestApi } from "@nbfleet/agent";
import type { VmView } from "@nbfleet/shared";
import { shellQuote as quoted } from "@nbfleet/shared/quote";
import {
  type ControllerProcess,
  api,
  startControllerProcess,
  stopControllerProcess,
} from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TerminalConnection } from "../../src/cli/terminal-client.js";
import { sandboxUserName } from "../../src/providers/local/sandbox-user.js";

const TOKEN = "nbf_e2e-isolation-admin-token-7";
const EACCES = 13;
const EPERM = 1;
let controller: ControllerProcess;
let root: string;
const passwords: Record<string, string> = {};

const vm = async (name: string) => (await api(controller)<VmView>("GET", `/v1/vms/${name}`)).body;

function sandbox(name: string) {
  const dir = path.join(root, name);
  const profile = path.join(dir, "agent", "profile", "nbserver");
  return {
    dir,
    home: path.join(dir, "home"),
    profile,
    keyFile: path.join(profile, "key.pem"),
    certFile: path.join(profile, "cert.pem"),
    tokenFile: path.join(profile, "agent-token"),
    hashFile: path.join(dir, "agent", "state", "password-hash"),
    launcherPidFile: path.join(dir, "install", "agent.pid"),
    installDir: path.join(dir, "install"),
  };
}

async function configFile(name: string): Promise<string> {
  const { profile } = sandbox(name);
  const file = (await readdir(profile)).find((f) => /^jupyter_(notebook|server)_config\.py$/.test(f));
  if (!file) throw new Error(`no Jupyter config in ${profile}`);
  return path.join(profile, file);
}

async function pids(name: string) {
  // "<pid>" or "<pid> <start time>": the launcher's pid comes first.
  const launcher = Number((await readFile(sandbox(name).launcherPidFile, "utf8")).trim().split(/\s+/)[0]);
  const children = await readFile(`/proc/${launcher}/task/${launcher}/children`, "utf8");
  const agent = Number(children.trim().split(/\s+/)[0]);
  const notebook = (await vm(name)).notebook.pid!;
  return { launcher, agent, notebook };
}

function uidOf(pid: number): number {
  return Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))![1]);
}

function userOf(uid: number): string {
  return execFileSync("getent", ["passwd", String(uid)], { encoding: "utf8" }).split(":")[0]!;
}

function processesOfUid(uid: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")
    .filter((e) => /^\d+$/.test(e))
    .map(Number)) {
    try {
      const status = readFileSync(`/proc/${entry}/status`, "utf8");
      if (/^State:\s+Z/m.test(status)) continue;
      if (Number(/^Uid:\s+(\d+)/m.exec(status)![1]) === uid) found.push(entry);
    } catch {
      // gone
    }
  }
  return found;
}

const port = (view: VmView) => Number(new URL(view.notebook.url!).port);

/** Everything on B that A's user tries. */
async function targetsOnB() {
  const b = sandbox("b");
  const bPids = await pids("b");
  return {
    files: {
      "b key.pem": b.keyFile,
      "b agent-token": b.tokenFile,
      "b config": await configFile("b"),
      "b password-hash": b.hashFile,
      "b run-agent.sh": path.join(b.installDir, "run-agent.sh"),
      // Under B's sandbox, which A cannot enter: refused whether or not the file is still there.
      "b install password-hash": path.join(b.installDir, "password-hash"),
      "b bootstrap-token": path.join(b.installDir, "bootstrap-token"),
      "b bootstrap.sh": path.join(b.dir, "bootstrap.sh"),
      "b notebook environ": `/proc/${bPids.notebook}/environ`,
      // Holds every machine's password hash; the test's data dir lets others pass through.
      "controller database": path.join(controller.dataDir, "nbfleet.sqlite"),
      "controller database wal": path.join(controller.dataDir, "nbfleet.sqlite-wal"),
    },
    dirs: { "b sandbox": b.dir, "b profile": b.profile, "sandbox root": root },
    pids: { "b notebook": bPids.notebook, "b agent": bPids.agent, "b launcher": bPids.launcher },
    status: `https://127.0.0.1:${port(await vm("b"))}/api/status`,
  };
}

const deniedEverywhere = {
  "read b key.pem": `denied ${EACCES}`,
  "read b agent-token": `denied ${EACCES}`,
  "read b config": `denied ${EACCES}`,
  "read b password-hash": `denied ${EACCES}`,
  "read b run-agent.sh": `denied ${EACCES}`,
  "read b install password-hash": `denied ${EACCES}`,
  "read b bootstrap-token": `denied ${EACCES}`,
  "read b bootstrap.sh": `denied ${EACCES}`,
  "read b notebook environ": `denied ${EACCES}`,
  "read controller database": `denied ${EACCES}`,
  "read controller database wal": `denied ${EACCES}`,
  "list b sandbox": `denied ${EACCES}`,
  "list b profile": `denied ${EACCES}`,
  "list sandbox root": `denied ${EACCES}`,
  "signal b notebook": `denied ${EPERM}`,
  "signal b agent": `denied ${EPERM}`,
  "signal b launcher": `denied ${EPERM}`,
  "call b /api/status with b's token": "denied 403",
};

/** Python for A's kernel: tries each target and reports `ok …` or `denied <errno|HTTP status>`. */
function probeProgram(targets: Awaited<ReturnType<typeof targetsOnB>>, own: { keyFile: string }): string {
  return `
import json, os, ssl, urllib.error, urllib.request
t = json.loads(${JSON.stringify(JSON.stringify({ ...targets, own }))})
out = {}
for name, p in t["files"].items():
    try:
        with open(p, "rb") as f:
            out["read " + name] = "ok %d" % len(f.read())
    except OSError as e:
        out["read " + name] = "denied %d" % e.errno
for name, p in t["dirs"].items():
    try:
        out["list " + name] = "ok %d" % len(os.listdir(p))
    except OSError as e:
        out["list " + name] = "denied %d" % e.errno
for name, pid in t["pids"].items():
    try:
        os.kill(pid, 0)
        out["signal " + name] = "ok"
    except OSError as e:
        out["signal " + name] = "denied %d" % e.errno
token = ""
try:
    token = open(t["files"]["b agent-token"]).read().strip()
except OSError:
    pass
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
req = urllib.request.Request(t["status"], headers={"Authorization": "token " + token})
try:
    out["call b /api/status with b's token"] = "ok %d" % urllib.request.urlopen(req, context=ctx, timeout=10).status
except urllib.error.HTTPError as e:
    out["call b /api/status with b's token"] = "denied %d" % e.code
try:
    with open(t["own"]["keyFile"], "rb") as f:
        out["read own key.pem"] = "ok" if f.read().startswith(b"-----BEGIN") else "bad"
except OSError as e:
    out["read own key.pem"] = "denied %d" % e.errno
try:
    os.kill(os.getppid(), 0)
    out["signal own notebook"] = "ok"
except OSError as e:
    out["signal own notebook"] = "denied %d" % e.errno
out["user"] = os.geteuid()
print("PROBE " + json.dumps(out))
`;
}

beforeAll(async () => {
  expect(process.getuid?.(), "machines get their own users only under a root controller").toBe(0);
  const dataDir = makeDataDir();
  controller = await startControllerProcess(dataDir, await freePort(), TOKEN);
  root = await realpath(path.join(dataDir, "sandboxes"));
  // Both at once: their users are made concurrently too.
  const created = await Promise.all(
    ["a", "b"].map((name) => api(controller)<{ password: string }>("POST", "/v1/vms", { name })),
  );
  for (const [i, name] of ["a", "b"].entries()) {
    expect(created[i]!.status).toBe(201);
    passwords[name] = created[i]!.body.password;
  }
  for (const name of ["a", "b"]) {
    await waitFor(
      `${name} running with its agent connected`,
      async () => {
        const view = await vm(name);
        return view.agent.status === "connected" && view.notebook.state === "running";
      },
      170_000,
    );
  }
}, 360_000);

afterAll(async () => {
  for (const name of ["a", "b"]) await api(controller)("DELETE", `/v1/vms/${name}`).catch(() => undefined);
  await stopControllerProcess(controller);
});

describe("local machines are isolated from each other", () => {
  it("runs each machine's notebook as its own user, in a sandbox only that user may enter", async () => {
    const [a, b] = [await pids("a"), await pids("b")];
    const [uidA, uidB] = [uidOf(a.notebook), uidOf(b.notebook)];
    expect(uidA).not.toBe(0);
    expect(uidB).not.toBe(0);
    expect(uidA).not.toBe(uidB);
    expect(userOf(uidA)).toBe(sandboxUserName(root, "a"));
    expect(userOf(uidB)).toBe(sandboxUserName(root, "b"));

    expect((await stat(root)).mode & 0o777).toBe(0o711);
    for (const [name, uid] of [
      ["a", uidA],
      ["b", uidB],
    ] as const) {
      const dir = await stat(sandbox(name).dir);
      expect({ name, mode: dir.mode & 0o777, uid: dir.uid }).toEqual({ name, mode: 0o710, uid: 0 });
      const group = execFileSync("getent", ["passwd", String(uid)], { encoding: "utf8" }).split(":")[3];
      expect(dir.gid).toBe(Number(group));
      const home = await stat(sandbox(name).home);
      expect({ name, mode: home.mode & 0o777, uid: home.uid }).toEqual({ name, mode: 0o700, uid });
      const key = await stat(sandbox(name).keyFile);
      expect({ name, mode: key.mode & 0o777, uid: key.uid }).toEqual({ name, mode: 0o600, uid });
    }
  });

  it("refuses code in A's kernel every read of B's secrets, every listing and every signal to B", async () => {
    const a = sandbox("a");
    const view = await vm("a");
    const target = {
      host: "127.0.0.1",
      port: port(view),
      baseUrl: "/",
      certFile: a.certFile,
    };
    // The test is the operator here: it talks to A's server with A's own agent token.
    const token = (await readFile(a.tokenFile, "utf8")).trim();
    const kernel = await requestApi(target, {
      method: "POST",
      path: "api/kernels",
      token,
      body: {},
      timeoutMs: 30_000,
    });
    expect(kernel.status).toBe(201);
    const id = (kernel.body as { id: string }).id;
    const channel = await KernelChannel.open(
      apiUrl(target, `api/kernels/${id}/channels`, "wss"),
      token,
      30_000,
      target,
    );
    try {
      const ran = await channel.execute(probeProgram(await targetsOnB(), { keyFile: a.keyFile }), 60_000);
      expect(ran.error).toBeNull();
      const line = /^PROBE (.*)$/m.exec(ran.stdout);
      expect(line, ran.stdout + ran.stderr).not.toBeNull();
      const result = JSON.parse(line![1]!) as Record<string, unknown>;
      expect(result).toEqual({
        ...deniedEverywhere,
        "read own key.pem": "ok",
        "signal own notebook": "ok",
        user: uidOf(view.notebook.pid!),
      });
    } finally {
      channel.close();
      await requestApi(target, { method: "DELETE", path: `api/kernels/${id}`, token, timeoutMs: 10_000 });
    }
  });

  it("refuses a terminal on A the same reads, listings and signals", async () => {
    const t = await targetsOnB();
    const script = [
      ...Object.entries(t.files).map(
        ([name, file]) =>
          `cat ${quoted(file)} >/dev/null 2>&1 && echo "R ${name}: ok" || echo "R ${name}: denied"`,
      ),
      ...Object.entries(t.dirs).map(
        ([name, dir]) =>
          `ls ${quoted(dir)} >/dev/null 2>&1 && echo "L ${name}: ok" || echo "L ${name}: denied"`,
      ),
      ...Object.entries(t.pids).map(([name, pid]) => `echo "K ${name}: $(kill -0 ${pid} 2>&1 && echo ok)"`),
      `echo "U $(id -un)"`,
    ].join("; ");
    let output = "";
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      TerminalConnection.open(
        { baseUrl: controller.url, token: TOKEN, vm: "a", command: script },
        {
          output: (_channel, data) => {
            output += data.toString();
          },
          control: (frame) => frame.type === "exit" && resolve(frame.exitCode),
          closed: () => {},
        },
      ).catch(reject);
    });
    expect(exitCode, output).toBe(0);
    const lines = output.split(/\r?\n/).filter((l) => /^[RLKU] /.test(l));
    expect(lines.filter((l) => l.startsWith("U "))).toEqual([`U ${sandboxUserName(root, "a")}`]);
    for (const name of Object.keys(t.files)) expect(lines).toContain(`R ${name}: denied`);
    for (const name of Object.keys(t.dirs)) expect(lines).toContain(`L ${name}: denied`);
    for (const name of Object.keys(t.pids)) {
      expect(lines.find((l) => l.startsWith(`K ${name}:`))).toMatch(/Operation not permitted/);
    }
    expect(lines).toHaveLength(Object.keys(t.files).length + Object.keys(t.dirs).length + 3 + 1);
  });

  it("still lets A's owner log in with the password and reach the API", async () => {
    const a = sandbox("a");
    const base = `https://127.0.0.1:${port(await vm("a"))}`;
    const ca = await readFile(a.certFile);
    const page = await request(`${base}/login`, { ca });
    expect(page.status).toBe(200);
    const xsrf = /_xsrf=([^;]+)/.exec(page.cookies.join("; "))?.[1];
    expect(xsrf).toBeTruthy();
    const form = `_xsrf=${encodeURIComponent(xsrf!)}&password=${encodeURIComponent(passwords.a!)}`;
    const login = await request(`${base}/login?next=%2Ftree`, {
      ca,
      method: "POST",
      body: form,
      headers: { "content-type": "application/x-www-form-urlencoded", cookie: `_xsrf=${xsrf}` },
    });
    expect(login.status).toBe(302);
    const cookie = [`_xsrf=${xsrf}`, ...login.cookies.map((c) => c.split(";")[0]!)].join("; ");
    const status = await request(`${base}/api/status`, { ca, headers: { cookie } });
    expect(status.status).toBe(200);
    const wrong = await request(`${base}/login?next=%2Ftree`, {
      ca,
      method: "POST",
      body: `_xsrf=${encodeURIComponent(xsrf!)}&password=${encodeURIComponent(passwords.b!)}`,
      headers: { "content-type": "application/x-www-form-urlencoded", cookie: `_xsrf=${xsrf}` },
    });
    expect(wrong.status).not.toBe(302);
  });

  it("stopping a machine ends every process of its user, a terminal's background job too", async () => {
    const uid = uidOf((await pids("a")).notebook);
    const exitCode = await new Promise<number | null>((resolve, reject) => {
      TerminalConnection.open(
        {
          baseUrl: controller.url,
          token: TOKEN,
          vm: "a",
          command: "setsid sleep 600 </dev/null >/dev/null 2>&1 &",
        },
        {
          output: () => {},
          control: (frame) => frame.type === "exit" && resolve(frame.exitCode),
          closed: () => {},
        },
      ).catch(reject);
    });
    expect(exitCode).toBe(0);
    const sleeper = await waitFor(
      "the background job running as A's user",
      async () =>
        processesOfUid(uid).find((pid) =>
          readFileSync(`/proc/${pid}/cmdline`, "utf8").startsWith("sleep\u0000600"),
        ),
      10_000,
    );
    expect((await api(controller)("POST", "/v1/vms/a/stop")).status).toBe(200);
    expect(processesOfUid(uid)).toEqual([]);
    // Gone, or a zombie until its new parent reaps it.
    expect(existsSync(`/proc/${sleeper}`) ? readFileSync(`/proc/${sleeper}/stat`, "utf8") : "gone").toMatch(
      /^gone$|\) Z /,
    );
    expect((await api(controller)("POST", "/v1/vms/a/start")).status).toBe(200);
    await waitFor(
      "a running again",
      async () => ((v) => v.agent.status === "connected" && v.notebook.state === "running")(await vm("a")),
      120_000,
    );
  });

  it("deleting a machine ends its user's processes and removes the user and its sandbox", async () => {
    const uid = uidOf((await pids("b")).notebook);
    const user = userOf(uid);
    expect((await api(controller)("DELETE", "/v1/vms/b")).status).toBeLessThan(300);
    await waitFor("b gone", async () => (await api(controller)("GET", "/v1/vms/b")).status === 404, 60_000);
    expect(processesOfUid(uid)).toEqual([]);
    expect(() => execFileSync("getent", ["passwd", user], { stdio: "ignore" })).toThrow();
    await expect(stat(sandbox("b").dir)).rejects.toThrow(/ENOENT/);
  });
});

function request(
  url: string,
  options: { ca: Buffer; method?: string; body?: string; headers?: Record<string, string> },
): Promise<{ status: number; cookies: string[]; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      url,
      { method: options.method ?? "GET", ca: options.ca, headers: options.headers ?? {}, timeout: 15_000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          if (body.length < 1_000_000) body += chunk;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, cookies: res.headers["set-cookie"] ?? [], body }),
        );
      },
    );
    req.on("timeout", () => req.destroy(new Error(`${url}: no answer within 15 s`)));
    req.on("error", reject);
    req.end(options.body);
  });
}
