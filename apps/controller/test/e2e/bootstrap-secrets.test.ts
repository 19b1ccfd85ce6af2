/**
 * What a machine is handed at bootstrap (the creation password's hash) applies once, and no
 * secret lies where another local user could read it: the real controller process, the local
 * provider's real bootstrap, the bundled agent and Debian's Jupyter, driven through the API.
 */
import { lstat, readFile, readdir, realpath } from "node:fs/promises";
import path from "node:path";
import type { CommandView, VmView } from "@nbfleet/shared";
import { login, servedFingerprint } from "@nbfleet/testkit/agent-process";
import {
  type ControllerProcess,
  api,
  startControllerProcess,
  stopControllerProcess,
} from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { servingButForLoad as serving } from "@nbfleet/testkit/vm-serving";
import { waitFor as waitUntil } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOKEN = "nbf_e2e-secrets-admin-token-5f1c0a7d9e";
const OLD = "old-password-created-with-the-vm";
const NEW = "new-password-set-by-command";
const NAME = "sec1";
let controller: ControllerProcess;
let dataDir: string;

const waitFor = <T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 120_000) =>
  waitUntil(what, probe, timeoutMs);
const vm = async () => (await api(controller)<VmView>("GET", `/v1/vms/${NAME}`)).body;
const notebookPort = (view: VmView) => Number(new URL(view.notebook.url!).port);

const waitServing = (what: string, extra: (view: VmView) => boolean = () => true) =>
  waitFor(what, async () => ((view) => serving(view) && extra(view) && view)(await vm()));

/** Queues a command through the API and waits until the agent says it succeeded. */
async function command(route: string, body: unknown = {}): Promise<void> {
  const queued = await api(controller)<CommandView | { command: CommandView }>("POST", route, body);
  expect(queued.status).toBe(202);
  const id = "command" in queued.body ? queued.body.command.id : queued.body.id;
  const done = await api(controller)<CommandView>("GET", `/v1/commands/${id}?wait=60`);
  expect(done.body.state).toBe("succeeded");
}

const sandboxDir = () => path.join(dataDir, "sandboxes", NAME);
const launcherPid = async () =>
  Number((await readFile(path.join(sandboxDir(), "install", "agent.pid"), "utf8")).trim().split(/\s+/)[0]);

async function childrenOf(pid: number): Promise<number[]> {
  const tasks = await readdir(`/proc/${pid}/task`).catch(() => [] as string[]);
  const out: number[] = [];
  for (const task of tasks) {
    const text = await readFile(`/proc/${pid}/task/${task}/children`, "utf8").catch(() => "");
    out.push(...text.trim().split(/\s+/).filter(Boolean).map(Number));
  }
  return out;
}

async function descendantsOf(pid: number): Promise<number[]> {
  const out: number[] = [];
  for (const child of await childrenOf(pid)) out.push(child, ...(await descendantsOf(child)));
  return out;
}

/** The agent: the launcher's child. */
async function agentPid(): Promise<number> {
  return waitFor("the agent under its launcher", async () => (await childrenOf(await launcherPid()))[0]);
}

/** Kills the agent with SIGKILL and waits for the launcher's next one to serve again. */
async function killAgentAndWaitForTheNext(): Promise<void> {
  const killed = await agentPid();
  process.kill(killed, "SIGKILL");
  await waitFor("a new agent", async () => {
    const next = (await childrenOf(await launcherPid()))[0];
    return next !== undefined && next !== killed;
  });
  await waitFor(
    "the agent seen disconnected or reconnected",
    async () => (await vm()).agent.status !== "never_connected",
  );
  await waitServing("serving after the agent's restart");
}

async function restartNotebook(): Promise<VmView> {
  const before = await vm();
  await command(`/v1/vms/${NAME}/notebook/restart`);
  return waitServing("a new notebook pid", (view) => view.notebook.pid !== before.notebook.pid);
}

beforeAll(async () => {
  dataDir = makeDataDir();
  controller = await startControllerProcess(dataDir, await freePort(), TOKEN);
});

afterAll(async () => {
  await api(controller)("DELETE", `/v1/vms/${NAME}`).catch(() => undefined);
  await stopControllerProcess(controller);
});

describe("bootstrap secrets", () => {
  it("a password changed by command survives an agent killed and restarted by its launcher", async () => {
    const created = await api(controller)("POST", "/v1/vms", { name: NAME, password: OLD });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const first = await waitServing(`${NAME} serving`);
    const port = notebookPort(first);
    expect(await login(port, OLD)).toBe(302);

    await command(`/v1/vms/${NAME}/notebook/password`, { password: NEW });
    await waitServing("serving with the new password");
    expect(await login(port, NEW)).toBe(302);
    expect(await login(port, OLD)).toBe(401);

    await killAgentAndWaitForTheNext();
    await restartNotebook();
    expect(await login(port, NEW)).toBe(302);
    expect(await login(port, OLD)).toBe(401);
  });

  it("a certificate rotated by command survives an agent restart and a notebook restart", async () => {
    const before = (await vm()).notebook.certificate!.fingerprintSha256;
    await command(`/v1/vms/${NAME}/notebook/certificate`);
    const rotated = await waitServing(
      "serving the rotated certificate",
      (view) => view.notebook.certificate?.fingerprintSha256 !== before,
    );
    const fingerprint = rotated.notebook.certificate!.fingerprintSha256;
    const port = notebookPort(rotated);
    expect(await servedFingerprint(port)).toBe(fingerprint);

    await killAgentAndWaitForTheNext();
    const after = await restartNotebook();
    expect(after.notebook.certificate?.fingerprintSha256).toBe(fingerprint);
    expect(await servedFingerprint(port)).toBe(fingerprint);
  });

  it("leaves no secret on a command line, in an environment, or in a file others can read", async () => {
    const sandbox = await realpath(sandboxDir());
    const read = (...parts: string[]) => readFile(path.join(sandbox, ...parts), "utf8").then((t) => t.trim());
    const secrets: Record<string, string> = {
      "admin token": TOKEN,
      "old password": OLD,
      "new password": NEW,
      "creation password hash": await read("install", "password-hash"),
      "current password hash": await read("agent", "state", "password-hash"),
      "bootstrap token": await read("install", "bootstrap-token"),
      "agent credential": await read("agent", "state", "controller-credential"),
      "notebook agent token": await read("agent", "profile", "nbserver", "agent-token"),
      "TLS key": (await read("agent", "profile", "nbserver", "key.pem")).split("\n")[1]!,
    };
    expect(secrets["creation password hash"]).toMatch(/^argon2:/);
    expect(secrets["current password hash"]).not.toBe(secrets["creation password hash"]);
    const leaks: string[] = [];
    // A whole Jupyter password hash (the bundle's own code only names the format).
    const ARGON2_HASH = /\$argon2(id|i)\$v=\d+\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]{8,}\$[A-Za-z0-9+/]{16,}/;
    const look = (where: string, text: string, generic: boolean) => {
      for (const [name, value] of Object.entries(secrets))
        if (text.includes(value)) leaks.push(`${name} in ${where}`);
      if (generic && ARGON2_HASH.test(text)) leaks.push(`an argon2 hash in ${where}`);
    };

    // Every process but the controller itself (given the admin token in its environment by
    // whoever started it, as the README says) carries none of this machine's secrets; the
    // controller's children and the machine's own processes carry no password hash at all.
    const ctl = controller.process.pid!;
    // The environment the controller was started with (see startControllerProcess): a helper
    // its runtime started before the controller's code ran (tsx's esbuild service) holds
    // exactly that; everything started later must not.
    const started = { ...process.env, NBFLEET_ADMIN_TOKEN: TOKEN, NBFLEET_LOG_LEVEL: "warn" };
    const startedWith = Object.entries(started)
      .map(([name, value]) => `${name}=${value}`)
      .sort()
      .join("\n");
    const inheritedBeforeCode = (environ: string) =>
      environ.split("\0").filter(Boolean).sort().join("\n") === startedWith;
    const ours = new Set(await descendantsOf(ctl));
    for (const pid of [await launcherPid(), ...(await descendantsOf(await launcherPid()))]) ours.add(pid);
    expect(ours.size).toBeGreaterThan(3);
    for (const entry of await readdir("/proc")) {
      if (!/^\d+$/.test(entry) || Number(entry) === ctl) continue;
      const cmdline = await readFile(`/proc/${entry}/cmdline`, "latin1").catch(() => "");
      const parent = /^PPid:\s+(\d+)/m.exec(
        await readFile(`/proc/${entry}/status`, "utf8").catch(() => ""),
      )?.[1];
      const what = `process ${entry} (${cmdline.replaceAll("\0", " ").slice(0, 100)}, parent ${parent})`;
      look(`the command line of ${what}`, cmdline, ours.has(Number(entry)));
      const environ = await readFile(`/proc/${entry}/environ`, "latin1").catch(() => "");
      if (!inheritedBeforeCode(environ)) look(`the environment of ${what}`, environ, ours.has(Number(entry)));
    }

    // Every file under the controller's data dir and the sandbox that another user can reach
    // and read: readable by group or others, through directories they may enter.
    const readable: string[] = [];
    const walk = async (dir: string, reachable: boolean): Promise<void> => {
      for (const name of await readdir(dir).catch(() => [] as string[])) {
        const file = path.join(dir, name);
        const info = await lstat(file).catch(() => null);
        if (!info) continue;
        if (info.isDirectory()) await walk(file, reachable && (info.mode & 0o011) !== 0);
        else if (info.isFile() && reachable && (info.mode & 0o044) !== 0 && info.size < 64 * 1024 * 1024) {
          readable.push(file);
          look(`${file} (mode ${(info.mode & 0o777).toString(8)})`, await readFile(file, "latin1"), true);
        }
      }
    };
    const reachable = async (dir: string) => {
      for (let at = dir; at !== path.dirname(at); at = path.dirname(at)) {
        if (((await lstat(at)).mode & 0o011) === 0) return false;
      }
      return true;
    };
    await walk(dataDir, await reachable(dataDir));
    if (!sandbox.startsWith(`${dataDir}/`)) await walk(sandbox, await reachable(sandbox));
    expect(readable.length).toBeGreaterThan(0);
    expect(leaks).toEqual([]);
  });
});
