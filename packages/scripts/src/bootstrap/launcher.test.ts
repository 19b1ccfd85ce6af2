/**
 * The rendered sandbox launcher, run with `sh` on an install dir whose versions are small fake
 * agents: the upgrade switch (exit 75), the rollback of a crash-looping or never-confirming new
 * version, and a confirmation that stands the watchdog down.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, readlink, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { renderLauncher } from "./linux.js";

const A = "1.0.0";
const B = "1.1.0";

let install: string;
let launcher: ChildProcess | undefined;
let console_ = "";

/** A fake agent: logs "<version> <pid>" to runs.log, then does `behaviour`. */
function fakeAgent(version: string, behaviour: string): string {
  return `import { appendFileSync, rmSync } from "node:fs";
const install = ${JSON.stringify("INSTALL")};
appendFileSync(install + "/runs.log", ${JSON.stringify(version)} + " " + process.pid + "\\n");
process.on("SIGTERM", () => { appendFileSync(install + "/runs.log", "term ${version}\\n"); process.exit(0); });
process.on("SIGUSR2", () => process.exit(75));
${behaviour}
`;
}
const STAY = "setInterval(() => {}, 1000);";

async function addVersion(version: string, behaviour: string): Promise<void> {
  const dir = path.join(install, "versions", version);
  await mkdir(dir, { recursive: true });
  await writeFile(
    path.join(dir, "nbfleet-agent.mjs"),
    fakeAgent(version, behaviour).replace("INSTALL", install),
  );
}

async function runs(): Promise<string[]> {
  return (await readFile(path.join(install, "runs.log"), "utf8").catch(() => "")).split("\n").filter(Boolean);
}

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined | false>,
  ms = 20_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; launcher said:\n${console_}`);
    await sleep(100);
  }
}

function pidOf(line: string | undefined): number {
  return Number(line?.split(" ")[1]);
}

/** What the agent does on `agent.upgrade` (upgrader.ts): upgrade.json, previous, current, exit 75. */
async function switchTo(version: string, deadlineInSec: number, from = A): Promise<void> {
  const now = Date.now();
  const pending = {
    commandId: `cmd-${version}`,
    from,
    to: version,
    fromDir: `versions/${from}`,
    toDir: `versions/${version}`,
    startedAt: new Date(now).toISOString(),
    deadline: new Date(now + deadlineInSec * 1000).toISOString(),
    deadlineUnix: Math.ceil((now + deadlineInSec * 1000) / 1000),
  };
  await writeFile(path.join(install, "upgrade.json"), `${JSON.stringify(pending)}\n`, { mode: 0o600 });
  await rm(path.join(install, "previous"), { force: true });
  await symlink(`versions/${from}`, path.join(install, "previous"));
  await rm(path.join(install, "current"));
  await symlink(`versions/${version}`, path.join(install, "current"));
  process.kill(pidOf((await runs()).at(-1)), "SIGUSR2");
}

async function startLauncher(): Promise<void> {
  const script = renderLauncher({
    mode: "sandbox",
    controllerUrl: "http://127.0.0.1:9/",
    artifactUrl: "http://127.0.0.1:9/v1/agent/artifact",
    artifactSha256: "0".repeat(64),
    bootstrapToken: "nbfb_launcher-test-token",
    dataDir: path.join(install, "data"),
    installDir: install,
    notebookPort: 9999,
    bindIp: "127.0.0.1",
    agentArgs: ["up"],
  });
  await writeFile(path.join(install, "run-agent.sh"), script, { mode: 0o755 });
  launcher = spawn("sh", [path.join(install, "run-agent.sh")], { stdio: ["ignore", "pipe", "pipe"] });
  launcher.stdout?.on("data", (chunk) => {
    console_ += chunk;
  });
  launcher.stderr?.on("data", (chunk) => {
    console_ += chunk;
  });
  await waitFor("the first agent", async () => (await runs()).length === 1);
}

beforeEach(async () => {
  install = await mkdtemp(path.join(tmpdir(), "nbf-launcher-"));
  await mkdir(path.join(install, "bin"));
  await symlink(process.execPath, path.join(install, "bin", "node"));
  await addVersion(A, STAY);
  await symlink(`versions/${A}`, path.join(install, "current"));
  console_ = "";
});

afterEach(async () => {
  if (launcher && launcher.exitCode === null) {
    const exited = new Promise((resolve) => launcher?.once("exit", resolve));
    launcher.kill("SIGTERM");
    await exited;
  }
  launcher = undefined;
  // Whatever fake agent a failed test left running.
  for (const line of await runs()) {
    const pid = pidOf(line);
    if (pid > 0) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {}
    }
  }
  await rm(install, { recursive: true, force: true });
});

describe("the sandbox launcher's upgrade watchdog", () => {
  it("rolls a crash-looping new version back after 3 exits and says why in rollback.json", async () => {
    await addVersion(B, "process.exit(1);");
    await startLauncher();
    await switchTo(B, 60);
    const back = await waitFor("A started again", async () => {
      const lines = (await runs()).filter((l) => !l.startsWith("term"));
      return lines.length >= 5 && lines;
    });
    expect(back.map((l) => l.split(" ")[0])).toEqual([A, B, B, B, A]);
    expect(await readlink(path.join(install, "current"))).toBe(`versions/${A}`);
    const rollback = JSON.parse(await readFile(path.join(install, "rollback.json"), "utf8"));
    expect(rollback).toMatchObject({
      from: A,
      to: B,
      reason: "the new agent exited 3 times (last status 1)",
    });
    expect(Date.parse(rollback.at)).toBeGreaterThan(Date.now() - 60_000);
    expect(existsSync(path.join(install, "upgrade.json"))).toBe(false);
    expect(existsSync(path.join(install, "previous"))).toBe(false);
    expect(console_).toContain(`rolled back from ${B} to ${A}`);
    // The old version stays up: no further restarts.
    await sleep(1500);
    expect((await runs()).filter((l) => !l.startsWith("term"))).toHaveLength(5);
  });

  it("stops a new version that never confirms when the deadline passes, and rolls back", async () => {
    await addVersion(B, STAY);
    await startLauncher();
    await switchTo(B, 3);
    const back = await waitFor(
      "A started again",
      async () => {
        const lines = await runs();
        return lines.filter((l) => l.startsWith(A)).length === 2 && lines;
      },
      30_000,
    );
    expect(back.map((l) => l.split(" ")[0])).toEqual([A, B, "term", A]);
    expect(back[2]).toBe(`term ${B}`);
    expect(await readlink(path.join(install, "current"))).toBe(`versions/${A}`);
    const rollback = JSON.parse(await readFile(path.join(install, "rollback.json"), "utf8"));
    expect(rollback).toMatchObject({
      from: A,
      to: B,
      reason: "the new agent did not connect and report healthy by its deadline",
    });
    expect(existsSync(path.join(install, "upgrade.json"))).toBe(false);
    expect(existsSync(path.join(install, "upgrade.deadline"))).toBe(false);
  });

  it("keeps a new version that confirms (removes upgrade.json): the watchdog stands down", async () => {
    await addVersion(B, `setTimeout(() => rmSync(install + "/upgrade.json"), 300); ${STAY}`);
    await startLauncher();
    await switchTo(B, 3);
    await waitFor("B confirmed", async () => !existsSync(path.join(install, "upgrade.json")));
    const newPid = pidOf((await runs()).at(-1));
    // Well past the deadline the upgrade had: B still runs, nothing was rolled back.
    await sleep(4500);
    expect((await runs()).map((l) => l.split(" ")[0])).toEqual([A, B]);
    expect(() => process.kill(newPid, 0)).not.toThrow();
    expect(await readlink(path.join(install, "current"))).toBe(`versions/${B}`);
    expect(existsSync(path.join(install, "rollback.json"))).toBe(false);
    expect(console_).toContain(`the agent switched versions; starting versions/${B}`);
  });

  it("does not count a confirmed version's switch (exit 75) against the next upgrade", async () => {
    await addVersion(B, `setTimeout(() => rmSync(install + "/upgrade.json"), 300); ${STAY}`);
    await addVersion("1.2.0", "process.exit(1);");
    await startLauncher();
    await switchTo(B, 60);
    await waitFor("B confirmed", async () => !existsSync(path.join(install, "upgrade.json")));
    await switchTo("1.2.0", 60, B);
    const lines = await waitFor("B started again", async () => {
      const all = (await runs()).filter((l) => !l.startsWith("term"));
      return all.length >= 6 && all;
    });
    expect(lines.map((l) => l.split(" ")[0])).toEqual([A, B, "1.2.0", "1.2.0", "1.2.0", B]);
    expect(await readlink(path.join(install, "current"))).toBe(`versions/${B}`);
    expect(JSON.parse(await readFile(path.join(install, "rollback.json"), "utf8"))).toMatchObject({
      from: B,
      to: "1.2.0",
      reason: "the new agent exited 3 times (last status 1)",
    });
  });

  it("rolls back at once when it starts with an upgrade whose deadline already passed", async () => {
    await addVersion(B, STAY);
    await startLauncher();
    await switchTo(B, -5);
    const lines = await waitFor("A started again", async () => {
      const all = await runs();
      return all.length === 2 && all;
    });
    expect(lines.map((l) => l.split(" ")[0])).toEqual([A, A]);
    expect(JSON.parse(await readFile(path.join(install, "rollback.json"), "utf8")).reason).toMatch(
      /deadline/,
    );
  });
});
