/**
 * Install and profile against the real machine: Debian's notebook 6.4.12, the real apt-get and
 * dpkg lock, real traitlets loading our config, a real unprivileged user running the server.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "@nbfleet/testkit/ports";
import { rejectionOf } from "@nbfleet/testkit/rejection";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { dataPaths } from "../../src/config/paths.js";
import { AgentError } from "../../src/errors.js";
import { type CommandRunner, spawnRunner } from "../../src/install/command-runner.js";
import { detectJupyter } from "../../src/install/detect.js";
import { planInstall } from "../../src/install/plan.js";
import { ensureInstalled, readInstallRecord, runPlan } from "../../src/install/run.js";
import { configFileName, renderConfig } from "../../src/profile/config.js";
import { type RunAsUser, assertTraversable, resolveRunAs } from "../../src/profile/user.js";
import { profileEnv, writeProfile } from "../../src/profile/write.js";

const DPKG_FRONTEND_LOCK = "/var/lib/dpkg/lock-frontend";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "nbf-e2e-install-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const agentError = (promise: Promise<unknown>) => rejectionOf(promise, AgentError);

describe("install on this Debian 12 machine", () => {
  it("detectJupyter finds Debian's notebook 6.4.12 through /usr/bin/jupyter's own interpreter", async () => {
    expect(await detectJupyter({ venvDir: path.join(dir, "venv") })).toEqual({
      generation: "notebook6",
      version: "6.4.12",
      notebookVersion: "6.4.12",
      jupyterServerVersion: null,
      jupyterPath: "/usr/bin/jupyter",
      python: "/usr/bin/python3",
      launch: ["/usr/bin/jupyter", "notebook"],
    });
  });

  it("ensureInstalled is idempotent: it records the installation and runs nothing", async () => {
    const paths = dataPaths(dir);
    const ran: string[][] = [];
    const runner: CommandRunner = async (argv, options) => {
      ran.push([...argv]);
      return spawnRunner(argv, options);
    };
    const first = await ensureInstalled({ paths, runner, isRoot: true });
    const record = await readInstallRecord(paths);
    const second = await ensureInstalled({ paths, runner, isRoot: true });
    expect(ran).toEqual([]);
    expect(first.action).toBe("already-installed");
    expect(second.action).toBe("already-installed");
    expect(record).toMatchObject({
      platform: "debian",
      generation: "notebook6",
      version: "6.4.12",
      jupyterPath: "/usr/bin/jupyter",
      python: "/usr/bin/python3",
      launch: ["/usr/bin/jupyter", "notebook"],
      installedByAgent: false,
    });
    expect(await readInstallRecord(paths)).toEqual(record);
  });

  it("--dry-run on this machine says it is installed and shows the apt plan only when forced", async () => {
    const result = await ensureInstalled({ paths: dataPaths(dir), dryRun: true, force: true });
    if (result.action !== "dry-run") throw new Error(`expected a dry run, got ${result.action}`);
    expect(result.text).toContain("already installed: notebook6 (notebook 6.4.12");
    expect(result.text).toContain(
      "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends jupyter-notebook python3-matplotlib python3-numpy python3-ipykernel",
    );
    expect(existsSync(dataPaths(dir).installRecord)).toBe(false);
  });
});

/** Holds the dpkg frontend lock the way another apt would (fcntl), until stdin closes. */
async function holdDpkgLock(): Promise<{ child: ChildProcess; release: () => Promise<void> }> {
  const script = [
    "import fcntl, os, sys",
    `fd = os.open(${JSON.stringify(DPKG_FRONTEND_LOCK)}, os.O_RDWR | os.O_CREAT, 0o640)`,
    "fcntl.lockf(fd, fcntl.LOCK_EX)",
    "print('locked', flush=True)",
    "sys.stdin.read()",
  ].join("\n");
  const child = spawn("/usr/bin/python3", ["-c", script], { stdio: ["pipe", "pipe", "inherit"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on("data", (chunk: Buffer) => {
      if (chunk.toString().includes("locked")) resolve();
    });
    child.once("exit", (code) => reject(new Error(`lock holder exited early (${code})`)));
  });
  return {
    child,
    release: async () => {
      child.stdin!.end();
      await exited;
    },
  };
}

describe("install with the real dpkg lock held", () => {
  // `apt-get update` needs the network and does not take the dpkg lock, so the real path under
  // test is the install step, re-installing packages that are already there.
  const installOnly = (() => {
    const plan = planInstall("debian", { venvDir: "/unused" });
    return { ...plan, steps: plan.steps.filter((step) => step.argv[1] === "install") };
  })();

  function countingRunner() {
    const calls: string[][] = [];
    const runner: CommandRunner = async (argv, options) => {
      calls.push([...argv]);
      return spawnRunner(argv, options);
    };
    return { calls, runner };
  }

  it("retries with backoff, then fails with NBF_INSTALL_LOCKED naming the lock and its holder", async () => {
    const holder = await holdDpkgLock();
    try {
      const { calls, runner } = countingRunner();
      const delays: number[] = [];
      const error = await agentError(
        runPlan(installOnly, {
          runner,
          sleep: async (ms) => {
            delays.push(ms);
            await sleep(ms);
          },
          lockRetry: { attempts: 3, initialDelayMs: 100 },
        }),
      );
      expect(error.code).toBe("NBF_INSTALL_LOCKED");
      expect(error.message).toContain(DPKG_FRONTEND_LOCK);
      expect(error.message).toContain(`process ${holder.child.pid} (python3)`);
      expect(error.details).toMatchObject({
        lock: DPKG_FRONTEND_LOCK,
        holderPid: holder.child.pid,
        attempts: 3,
      });
      expect(calls).toHaveLength(3);
      expect(calls[0]!.slice(0, 2)).toEqual(["apt-get", "install"]);
      expect(delays).toEqual([100, 200]);
    } finally {
      await holder.release();
    }
  });

  it("succeeds when the lock is released after the first retry", async () => {
    const holder = await holdDpkgLock();
    try {
      const { calls, runner } = countingRunner();
      let sleeps = 0;
      await runPlan(installOnly, {
        runner,
        sleep: async (ms) => {
          sleeps++;
          if (sleeps === 1) await holder.release();
          await sleep(ms);
        },
        lockRetry: { attempts: 3, initialDelayMs: 100 },
      });
      expect(calls).toHaveLength(2);
      expect(sleeps).toBe(1);
    } finally {
      await holder.release();
    }
  });
});

const LOAD_CONFIG = `
import json, sys
from traitlets.config.loader import PyFileConfigLoader
config = PyFileConfigLoader(sys.argv[1], path=sys.argv[2]).load_config()
print(json.dumps(config))
`;

function loadWithTraitlets(configDir: string, fileName: string): Record<string, Record<string, unknown>> {
  return JSON.parse(
    execFileSync("/usr/bin/python3", ["-c", LOAD_CONFIG, fileName, configDir], { encoding: "utf8" }),
  );
}

describe("config values cannot inject code", () => {
  const pwned = `/tmp/nbf-pwned-${randomBytes(6).toString("hex")}`;
  const notebookDir = `/tmp/x'; import os; os.system('touch ${pwned}') #\nimport sys`;
  // Without the trailing line, pasted raw into '…' this payload is valid Python that runs.
  const oneLine = (target: string) => `/tmp/c'; import os; os.system('touch ${target}') #`;
  const baseUrl = `/b'\"\\\\'\n\r\u2028"""'''; import os; os.system('touch ${pwned}')\n/`;

  afterAll(async () => {
    await rm(pwned, { force: true });
    await rm(`${pwned}-naive`, { force: true });
  });

  it("the payload is real: pasted into a config naively, traitlets runs it", async () => {
    const naive = `c.NotebookApp.notebook_dir = '${oneLine(`${pwned}-naive`)}'\n`;
    await writeFile(path.join(dir, "jupyter_notebook_config.py"), naive);
    loadWithTraitlets(dir, "jupyter_notebook_config.py");
    expect(existsSync(`${pwned}-naive`)).toBe(true);
  });

  it.each(["notebook6", "server2"] as const)(
    "%s: real traitlets reads back exactly what was written",
    async (generation) => {
      const text = renderConfig(generation, {
        ip: "127.0.0.1",
        port: 9999,
        notebookDir,
        baseUrl,
        certFile: oneLine(pwned),
        keyFile: "/etc/key\n.pem",
        passwordHash: "argon2:$argon2id$v=19$m=10240,t=10,p=8$'\\\n",
        agentToken: "t'\"\\\u0000",
      });
      await writeFile(path.join(dir, configFileName(generation)), text);
      const config = loadWithTraitlets(dir, configFileName(generation));
      if (generation === "notebook6") {
        expect(config.NotebookApp).toMatchObject({
          notebook_dir: notebookDir,
          base_url: baseUrl,
          certfile: oneLine(pwned),
          keyfile: "/etc/key\n.pem",
          password: "argon2:$argon2id$v=19$m=10240,t=10,p=8$'\\\n",
          token: "t'\"\\\u0000",
        });
      } else {
        expect(config.ServerApp).toMatchObject({
          root_dir: notebookDir,
          base_url: baseUrl,
          certfile: oneLine(pwned),
          keyfile: "/etc/key\n.pem",
        });
        expect(config.PasswordIdentityProvider).toMatchObject({
          hashed_password: "argon2:$argon2id$v=19$m=10240,t=10,p=8$'\\\n",
        });
        expect(config.IdentityProvider).toEqual({ token: "t'\"\\\u0000" });
      }
      expect(existsSync(pwned)).toBe(false);
    },
  );

  it("every notebook6 trait we write is a configurable trait of the real NotebookApp 6.4.12", async () => {
    await writeFile(
      path.join(dir, "jupyter_notebook_config.py"),
      renderConfig("notebook6", {
        ip: "127.0.0.1",
        port: 9999,
        notebookDir: "/srv/nb",
        baseUrl: "/",
        certFile: "/c.pem",
        keyFile: "/k.pem",
        passwordHash: "sha1:0123456789ab:0123456789abcdef0123456789abcdef01234567",
        agentToken: "t",
      }),
    );
    const program = `
import json, sys
from traitlets.config.loader import PyFileConfigLoader
from notebook.notebookapp import NotebookApp
config = PyFileConfigLoader("jupyter_notebook_config.py", path=sys.argv[1]).load_config()
known = set(NotebookApp.class_trait_names(config=True))
print(json.dumps({"sections": sorted(config.keys()), "unknown": sorted(k for k in config.NotebookApp if k not in known), "count": len(config.NotebookApp)}))
`;
    const out = JSON.parse(execFileSync("/usr/bin/python3", ["-c", program, dir], { encoding: "utf8" }));
    expect(out).toEqual({ sections: ["NotebookApp"], unknown: [], count: 13 });
  });
});

describe("the notebook runs as an unprivileged user with this profile", () => {
  const userName = `nbft${randomBytes(4).toString("hex")}`;
  let user: RunAsUser | null = null;

  beforeAll(async () => {
    expect(process.getuid?.()).toBe(0);
  });

  afterAll(async () => {
    if (user) execFileSync("userdel", ["--remove", userName], { stdio: "ignore" });
  });

  it("creates the user, owns the profile and notebook dir by it, and the real server honours the config", async () => {
    user = await resolveRunAs({ isRoot: true, runAs: userName, allowRoot: false });
    expect(user).toMatchObject({ user: userName, home: `/home/${userName}` });
    expect(user!.uid).toBeGreaterThan(0);
    expect(await resolveRunAs({ isRoot: true, runAs: userName, allowRoot: false })).toEqual(user);

    const paths = dataPaths(dir);
    await expect(assertTraversable(paths.dataDir, user!)).rejects.toThrow(/is not searchable/);
    await chmod(dir, 0o711);
    await assertTraversable(paths.dataDir, user!);

    const port = await freePort();
    const written = await writeProfile(
      paths,
      "notebook6",
      {
        ip: "127.0.0.1",
        port,
        notebookDir: paths.defaultNotebookDir,
        baseUrl: "/nb/",
        certFile: null,
        keyFile: null,
        passwordHash: "sha1:0123456789ab:0123456789abcdef0123456789abcdef01234567",
      },
      user,
    );
    for (const owned of [
      paths.runtimeDir,
      paths.jupyterDataDir,
      path.join(paths.configDir, "nbconfig"),
      written.configFile,
      paths.agentTokenFile,
      paths.defaultNotebookDir,
    ]) {
      expect((await stat(owned)).uid, owned).toBe(user!.uid);
    }
    // The agent's own, so their user cannot put links where the agent writes as root.
    for (const agents of [paths.profileDir, paths.configDir])
      expect((await stat(agents)).uid, agents).toBe(0);
    expect((await readFile(paths.agentTokenFile, "utf8")).trim()).toBe(written.agentToken);
    // Once a kernel has run, the user has ~/.ipython, and Jupyter then wants to write a
    // "migrated" marker into the config dir: the server must start all the same.
    await mkdir(path.join(user!.home, ".ipython"), { recursive: true });
    await chown(path.join(user!.home, ".ipython"), user!.uid, user!.gid);

    const server = spawn("/usr/bin/jupyter", ["notebook"], {
      uid: user!.uid,
      gid: user!.gid,
      env: { PATH: "/usr/bin:/bin", HOME: user!.home, ...profileEnv(paths) },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let log = "";
    const collect = (chunk: Buffer) => {
      log += chunk.toString();
    };
    server.stdout!.on("data", collect);
    server.stderr!.on("data", collect);
    const exited = new Promise<number | null>((resolve) => server.once("exit", (code) => resolve(code)));
    try {
      const base = `http://127.0.0.1:${port}/nb`;
      let version: string | null = null;
      for (let i = 0; i < 150 && version === null; i++) {
        try {
          const response = await fetch(`${base}/api`);
          if (response.ok) version = ((await response.json()) as { version: string }).version;
        } catch {
          await sleep(100);
        }
      }
      expect(version, log).toBe("6.4.12");
      expect((await fetch(`${base}/api/status`)).status).toBe(403);
      const authorised = await fetch(`${base}/api/status`, {
        headers: { Authorization: `token ${written.agentToken}` },
      });
      expect(authorised.status).toBe(200);
      const owner = execFileSync("ps", ["-o", "user=", "-p", String(server.pid)], {
        encoding: "utf8",
      }).trim();
      expect(owner).toBe(userName);
    } finally {
      server.kill("SIGTERM");
      await exited;
    }
  });
});
