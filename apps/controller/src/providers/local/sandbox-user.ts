/**
 * Each local sandbox's own unprivileged user, when the controller is root: its notebook server,
 * kernels and terminals run as that user, so code on one machine can neither read another's
 * key, agent token or config nor signal its processes (different uids, 0700 directories).
 *
 *   name    nbf-<the VM name's first 18 characters>-<8 hex of sha256(sandbox root, VM name)>:
 *           at most 31 characters of [a-z0-9-] (a VM name already is one), unique per
 *           controller data dir, so two controllers on one host never share a user
 *   home    <sandbox>/home (0700), removed with the sandbox
 *   marker  GECOS "nbfleet sandbox <vm>": only a user carrying it is ever reused or deleted
 *
 * The user is made when the machine is created and deleted with it; stopping a machine ends
 * every process of its user (orphaned kernels, a terminal's background jobs), as powering off
 * a VM would. useradd and userdel run under the same host-wide lock the agent takes
 * (apps/agent/src/profile/user.ts, USERS_LOCK_FILE): concurrent runs otherwise hand out one uid
 * twice.
 */
import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile, readdir } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The agent's lock file (apps/agent/src/profile/user.ts): one lock for every nbfleet process on the host. */
const USERS_LOCK_FILE = "/run/nbfleet-users.lock";
const LOCK_WAIT_SEC = 60;
const USERADD_NAME_IN_USE = 9;
const NAME_PART = 18;
const KILL_DEADLINE_MS = 10_000;

export interface SandboxUser {
  user: string;
  uid: number;
  gid: number;
  home: string;
}

export function sandboxUserName(root: string, vmName: string): string {
  const hash = createHash("sha256").update(`${root}\0${vmName}`).digest("hex").slice(0, 8);
  const part = vmName
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "-")
    .slice(0, NAME_PART)
    .replace(/-+$/, "");
  return `nbf-${part ? `${part}-` : ""}${hash}`;
}

export function sandboxUserMarker(vmName: string): string {
  return `nbfleet sandbox ${vmName}`;
}

/** The user for `vmName`, created when missing; refuses a same-named user nbfleet did not make. */
export async function ensureSandboxUser(root: string, vmName: string, home: string): Promise<SandboxUser> {
  const name = sandboxUserName(root, vmName);
  const marker = sandboxUserMarker(vmName);
  if (/[:\n]/.test(home))
    throw new Error(`the sandbox path ${JSON.stringify(home)} cannot be a home directory`);
  let entry = await lookupUser(name);
  if (!entry) {
    const useradd = [
      "useradd",
      "--system",
      "--user-group",
      "--no-create-home",
      "--home-dir",
      home,
      "--shell",
      "/usr/sbin/nologin",
      "--comment",
      marker,
      name,
    ];
    const created = await underUsersLock(useradd);
    if (created.exitCode !== 0 && created.exitCode !== USERADD_NAME_IN_USE) {
      throw new Error(
        `could not create the sandbox user ${name}: \`${useradd.join(" ")}\` failed: ${created.output}`,
      );
    }
    entry = await lookupUser(name);
    if (!entry)
      throw new Error(`the sandbox user ${name} was created but \`getent passwd ${name}\` does not find it`);
  }
  if (entry.gecos !== marker) {
    throw new Error(
      `a user ${name} exists that nbfleet did not make for sandbox ${vmName} (its comment is ` +
        `${JSON.stringify(entry.gecos)}, expected ${JSON.stringify(marker)}); remove it or rename the VM`,
    );
  }
  if (entry.uid === 0)
    throw new Error(`the sandbox user ${name} has uid 0; refusing to run a notebook as root`);
  return { user: name, uid: entry.uid, gid: entry.gid, home: entry.home };
}

/** Ends every process of the sandbox's user (when nbfleet made that user); bounded. */
export async function endSandboxUserProcesses(root: string, vmName: string): Promise<void> {
  const entry = await ownUser(root, vmName);
  if (entry) await killUserProcesses(entry.uid, sandboxUserName(root, vmName));
}

/** Deletes the sandbox's user after ending its processes; a user nbfleet did not make is left alone. */
export async function removeSandboxUser(root: string, vmName: string): Promise<void> {
  const name = sandboxUserName(root, vmName);
  const entry = await ownUser(root, vmName);
  if (!entry) return;
  await killUserProcesses(entry.uid, name);
  const userdel = ["userdel", name];
  const result = await underUsersLock(userdel);
  // 6: gone meanwhile.
  if (result.exitCode !== 0 && result.exitCode !== 6) {
    throw new Error(
      `could not delete the sandbox user ${name}: \`${userdel.join(" ")}\` failed: ${result.output}`,
    );
  }
}

async function ownUser(root: string, vmName: string): Promise<PasswdEntry | null> {
  const entry = await lookupUser(sandboxUserName(root, vmName));
  return entry && entry.gecos === sandboxUserMarker(vmName) && entry.uid !== 0 ? entry : null;
}

interface PasswdEntry {
  uid: number;
  gid: number;
  gecos: string;
  home: string;
}

async function lookupUser(name: string): Promise<PasswdEntry | null> {
  try {
    const { stdout } = await run("getent", ["passwd", name], { timeout: 10_000 });
    const fields = stdout.split("\n")[0]!.split(":");
    const uid = Number(fields[2]);
    const gid = Number(fields[3]);
    if (fields[0] !== name || !Number.isInteger(uid) || !Number.isInteger(gid)) return null;
    return { uid, gid, gecos: fields[4] ?? "", home: fields[5] ?? "" };
  } catch (error) {
    // getent exits 2 for "no such key"; anything else is a real failure.
    if ((error as { code?: unknown }).code === 2) return null;
    throw error;
  }
}

async function underUsersLock(argv: string[]): Promise<{ exitCode: number; output: string }> {
  try {
    await run("flock", ["--wait", String(LOCK_WAIT_SEC), USERS_LOCK_FILE, ...argv], {
      timeout: (LOCK_WAIT_SEC + 60) * 1000,
      maxBuffer: 1024 * 1024,
    });
    return { exitCode: 0, output: "" };
  } catch (error) {
    const { code, stderr, stdout, message } = error as {
      code?: unknown;
      stderr?: string;
      stdout?: string;
      message: string;
    };
    const output = `${stdout ?? ""}${stderr ?? ""}`.trim() || message;
    return { exitCode: typeof code === "number" ? code : -1, output };
  }
}

/** SIGKILLs every live process whose real or effective uid is `uid` until none is left (zombies aside). */
async function killUserProcesses(uid: number, name: string): Promise<void> {
  const deadline = Date.now() + KILL_DEADLINE_MS;
  for (;;) {
    const pids = await processesOf(uid);
    if (pids.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(`processes of the sandbox user ${name} outlived SIGKILL for 10 s: ${pids.join(", ")}`);
    }
    for (const pid of pids) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    await sleep(100);
  }
}

async function processesOf(uid: number): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const status = await readFile(`/proc/${entry}/status`, "utf8").catch(() => "");
    const state = /^State:\s+(\S)/m.exec(status)?.[1];
    const uids = /^Uid:\s+(\d+)\s+(\d+)/m.exec(status);
    if (!uids || state === "Z" || state === "X") continue;
    if (Number(uids[1]) === uid || Number(uids[2]) === uid) pids.push(Number(entry));
  }
  return pids;
}
