import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { rejectionOf } from "@nbfleet/testkit/rejection";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { dataPaths } from "../config/paths.js";
import { AgentError } from "../errors.js";
import type { CommandResult, CommandRunner } from "./command-runner.js";
import type { JupyterInstallation } from "./detect.js";
import { planInstall } from "./plan.js";
import { ensureInstalled, readInstallRecord, runPlan } from "./run.js";

const DEBIAN = "ID=debian\n";
const APT_LOCKED: CommandResult = {
  code: 100,
  stdout: "",
  stderr:
    "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 777 (unattended-upgr)\n" +
    "E: Unable to acquire the dpkg frontend lock (/var/lib/dpkg/lock-frontend), is another process using it?\n",
};
const OK: CommandResult = { code: 0, stdout: "", stderr: "" };

const NOTEBOOK6: JupyterInstallation = {
  generation: "notebook6",
  version: "6.4.12",
  notebookVersion: "6.4.12",
  jupyterServerVersion: null,
  jupyterPath: "/usr/bin/jupyter",
  python: "/usr/bin/python3",
  launch: ["/usr/bin/jupyter", "notebook"],
};

/** A runner that answers from a script and records every call. */
function scriptedRunner(answer: (argv: readonly string[], call: number) => CommandResult) {
  const calls: { argv: string[]; env: Record<string, string | undefined> | undefined }[] = [];
  const runner: CommandRunner = async (argv, options) => {
    calls.push({ argv: [...argv], env: options?.env });
    return answer(argv, calls.length);
  };
  return { runner, calls };
}

function recordingSleep() {
  const delays: number[] = [];
  return { delays, sleep: async (ms: number) => void delays.push(ms) };
}

const catchError = (promise: Promise<unknown>) => rejectionOf(promise, AgentError);

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "nbf-install-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("runPlan lock retry", () => {
  const plan = planInstall("debian", { venvDir: "/unused" });

  it("retries a held apt lock with doubling backoff, then fails with NBF_INSTALL_LOCKED", async () => {
    const { runner, calls } = scriptedRunner((argv) => (argv[1] === "install" ? APT_LOCKED : OK));
    const { delays, sleep } = recordingSleep();
    const error = await catchError(
      runPlan(plan, { runner, sleep, lockRetry: { attempts: 5, initialDelayMs: 2000 } }),
    );
    expect(error.code).toBe("NBF_INSTALL_LOCKED");
    expect(calls.filter((call) => call.argv[1] === "install")).toHaveLength(5);
    expect(delays).toEqual([2000, 4000, 8000, 16000]);
    expect(error.message).toContain("/var/lib/dpkg/lock-frontend");
    expect(error.message).toContain("process 777 (unattended-upgr)");
    expect(error.message).toContain("5 tries over 30 s");
    expect(error.details).toMatchObject({ holderPid: 777, attempts: 5, waitedMs: 30000 });
  });

  it("caps the delay at maxDelayMs", async () => {
    const { runner } = scriptedRunner((argv) => (argv[1] === "install" ? APT_LOCKED : OK));
    const { delays, sleep } = recordingSleep();
    await catchError(
      runPlan(plan, {
        runner,
        sleep,
        lockRetry: { attempts: 4, initialDelayMs: 10, factor: 3, maxDelayMs: 50 },
      }),
    );
    expect(delays).toEqual([10, 30, 50]);
  });

  it("goes on once the lock is released", async () => {
    const { runner, calls } = scriptedRunner((argv, call) =>
      argv[1] === "install" && call < 4 ? APT_LOCKED : OK,
    );
    const { delays, sleep } = recordingSleep();
    await runPlan(plan, { runner, sleep });
    expect(calls.map((call) => call.argv[1])).toEqual(["update", "install", "install", "install"]);
    expect(delays).toEqual([2000, 4000]);
    expect(calls[1]!.env).toEqual({ DEBIAN_FRONTEND: "noninteractive" });
  });

  it("fails at once with NBF_INSTALL_FAILED, the command and the last stderr lines", async () => {
    const stderr = `${Array.from({ length: 30 }, (_, i) => `line ${i}`).join("\n")}\nE: Unable to locate package jupyter-notebook\n`;
    const { runner, calls } = scriptedRunner((argv) =>
      argv[1] === "install" ? { code: 100, stdout: "", stderr } : OK,
    );
    const { delays, sleep } = recordingSleep();
    const error = await catchError(runPlan(plan, { runner, sleep }));
    expect(error.code).toBe("NBF_INSTALL_FAILED");
    expect(error.message).toContain(
      "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends jupyter-notebook",
    );
    expect(error.message).toContain("E: Unable to locate package jupyter-notebook");
    expect(error.message).not.toContain("line 5\n");
    expect(calls).toHaveLength(2);
    expect(delays).toEqual([]);
  });

  it("retries a locked zypper too", async () => {
    const zypper = planInstall("opensuse", { venvDir: "/unused" });
    const locked = {
      code: 7,
      stdout: "",
      stderr: "System management is locked by the application with pid 12 (zypper).\n",
    };
    const { runner, calls } = scriptedRunner(() => locked);
    const { sleep } = recordingSleep();
    const error = await catchError(runPlan(zypper, { runner, sleep, lockRetry: { attempts: 2 } }));
    expect(error.code).toBe("NBF_INSTALL_LOCKED");
    expect(error.message).toContain("process 12 (zypper)");
    expect(calls).toHaveLength(2);
  });
});

describe("ensureInstalled", () => {
  it("only records an installation that is already there, and keeps its date on the next run", async () => {
    const paths = dataPaths(dir);
    const { runner, calls } = scriptedRunner(() => OK);
    const first = await ensureInstalled({
      paths,
      runner,
      osReleaseText: DEBIAN,
      platform: "linux",
      detect: async () => NOTEBOOK6,
      now: () => new Date("2026-01-01T00:00:00Z"),
    });
    expect(first.action).toBe("already-installed");
    expect(calls).toEqual([]);
    const record = await readInstallRecord(paths);
    expect(record).toEqual({
      platform: "debian",
      generation: "notebook6",
      version: "6.4.12",
      notebookVersion: "6.4.12",
      jupyterServerVersion: null,
      jupyterPath: "/usr/bin/jupyter",
      python: "/usr/bin/python3",
      launch: ["/usr/bin/jupyter", "notebook"],
      installedByAgent: false,
      installedAt: "2026-01-01T00:00:00.000Z",
    });
    await ensureInstalled({
      paths,
      runner,
      osReleaseText: DEBIAN,
      platform: "linux",
      detect: async () => NOTEBOOK6,
      now: () => new Date("2027-01-01T00:00:00Z"),
    });
    expect((await readInstallRecord(paths))?.installedAt).toBe("2026-01-01T00:00:00.000Z");
    expect(calls).toEqual([]);
  });

  it("refuses to install without root and names the exact commands to run with sudo", async () => {
    const { runner, calls } = scriptedRunner(() => OK);
    const error = await catchError(
      ensureInstalled({
        paths: dataPaths(dir),
        runner,
        isRoot: false,
        osReleaseText: DEBIAN,
        platform: "linux",
        detect: async () => null,
      }),
    );
    expect(error.code).toBe("NBF_INSTALL_NEEDS_ROOT");
    expect(error.message).toContain("sudo apt-get update\n");
    expect(error.message).toContain(
      "sudo DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends jupyter-notebook python3-matplotlib python3-numpy python3-ipykernel\n",
    );
    expect(calls).toEqual([]);
    expect(await readInstallRecord(dataPaths(dir))).toBeNull();
  });

  it("names zypper for openSUSE when not root", async () => {
    const error = await catchError(
      ensureInstalled({
        paths: dataPaths(dir),
        isRoot: false,
        osReleaseText: 'ID="opensuse-leap"\n',
        platform: "linux",
        detect: async () => null,
      }),
    );
    expect(error.message).toContain(
      "sudo zypper --non-interactive install python3-notebook python3-matplotlib python3-numpy python3-ipykernel",
    );
  });

  it("runs the pip plan without root, detects again and records what it installed", async () => {
    const paths = dataPaths(dir);
    const venvDir = path.join(dir, "venv");
    const { runner, calls } = scriptedRunner(() => OK);
    let installed = false;
    const serverOnly: JupyterInstallation = {
      generation: "server2",
      version: "2.14.2",
      notebookVersion: null,
      jupyterServerVersion: "2.14.2",
      jupyterPath: `${venvDir}/bin/jupyter`,
      python: `${venvDir}/bin/python3`,
      launch: [`${venvDir}/bin/jupyter`, "server"],
    };
    const result = await ensureInstalled({
      paths,
      venvDir,
      runner,
      isRoot: false,
      osReleaseText: "ID=fedora\n",
      platform: "linux",
      detect: async () => {
        if (!installed && calls.length === 2) installed = true;
        return installed ? serverOnly : null;
      },
    });
    expect(result.action).toBe("installed");
    expect(calls.map((call) => call.argv)).toEqual([
      ["python3", "-m", "venv", venvDir],
      [`${venvDir}/bin/pip`, "install", "notebook", "matplotlib", "numpy", "ipykernel"],
    ]);
    expect(await readInstallRecord(paths)).toMatchObject({
      platform: "pip",
      generation: "server2",
      launch: [`${venvDir}/bin/jupyter`, "server"],
      installedByAgent: true,
    });
  });

  it("fails clearly when the plan ran but nothing is found afterwards", async () => {
    const { runner } = scriptedRunner(() => OK);
    const error = await catchError(
      ensureInstalled({
        paths: dataPaths(dir),
        runner,
        isRoot: true,
        osReleaseText: DEBIAN,
        platform: "linux",
        detect: async () => null,
      }),
    );
    expect(error.code).toBe("NBF_INSTALL_FAILED");
    expect(error.message).toContain("no Jupyter was found");
  });

  it("dry-run prints the plan and changes nothing", async () => {
    const paths = dataPaths(dir);
    const { runner, calls } = scriptedRunner(() => OK);
    const missing = await ensureInstalled({
      paths,
      runner,
      dryRun: true,
      isRoot: false,
      osReleaseText: DEBIAN,
      platform: "linux",
      detect: async () => null,
    });
    expect(missing.action).toBe("dry-run");
    if (missing.action !== "dry-run") throw new Error("unreachable");
    expect(missing.text).toContain("apt-get install -y --no-install-recommends jupyter-notebook");
    const present = await ensureInstalled({
      paths,
      runner,
      dryRun: true,
      osReleaseText: DEBIAN,
      platform: "linux",
      detect: async () => NOTEBOOK6,
    });
    if (present.action !== "dry-run") throw new Error("expected a dry run");
    expect(present.text).toContain(
      "already installed: notebook6 (notebook 6.4.12, jupyter_server -) at /usr/bin/jupyter",
    );
    expect(calls).toEqual([]);
    expect(await readInstallRecord(paths)).toBeNull();
  });
});

describe("readInstallRecord", () => {
  it("rejects a corrupt record with the field that is wrong", async () => {
    const paths = dataPaths(dir);
    await ensureInstalled({ paths, osReleaseText: DEBIAN, platform: "linux", detect: async () => NOTEBOOK6 });
    const record = JSON.parse(await readFile(paths.installRecord, "utf8"));
    await writeFile(paths.installRecord, JSON.stringify({ ...record, generation: "notebook5" }));
    await expect(readInstallRecord(paths)).rejects.toThrow(/generation/);
    await writeFile(paths.installRecord, "{not json");
    await expect(readInstallRecord(paths)).rejects.toThrow(/install record/);
  });
});
