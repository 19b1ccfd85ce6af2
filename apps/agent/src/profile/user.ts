/**
 * Who the notebook server runs as. An agent that is root never starts it as root unless told
 * to: it uses an unprivileged user (default `nbfleet`), created on first use.
 */
import { stat } from "node:fs/promises";
import path from "node:path";
import { AgentError } from "../errors.js";
import { type CommandRunner, spawnRunner } from "../install/command-runner.js";
import { formatCommand } from "../install/plan.js";

export interface RunAsUser {
  user: string;
  uid: number;
  gid: number;
  home: string;
}

export interface ResolveRunAsOptions {
  isRoot: boolean;
  /** The user to run as when the agent is root. */
  runAs: string;
  /** Permits root: only then may runAs be (or resolve to) root. */
  allowRoot: boolean;
  runner?: CommandRunner;
}

const USER_NAME = /^[a-z_][a-z0-9_-]*\$?$/;

/**
 * Every nbfleet process on a host that adds or removes users takes this lock first (flock(1)),
 * the controller's local provider too (providers/local/sandbox-user.ts names the same file).
 * Two useradd runs at once can both pick a uid and home: the user then exists once, with a
 * home owned by a uid that is not its own and may later be handed to another user.
 */
export const USERS_LOCK_FILE = "/run/nbfleet-users.lock";
const USERS_LOCK_WAIT_SEC = 60;
const USERADD_NAME_IN_USE = 9;

/** Runs `argv` holding USERS_LOCK_FILE; without flock(1) on the host, runs it bare. */
async function underUsersLock(argv: string[], runner: CommandRunner) {
  const locked = await runner(["flock", "--wait", String(USERS_LOCK_WAIT_SEC), USERS_LOCK_FILE, ...argv], {
    timeoutMs: (USERS_LOCK_WAIT_SEC + 60) * 1000,
  });
  const noFlock = locked.code === 127 || (locked.code === -1 && /ENOENT/.test(locked.stderr));
  return noFlock ? runner(argv, { timeoutMs: 60_000 }) : locked;
}

function commandLine(argv: string[]): string {
  return formatCommand({ description: "", argv, needsRoot: true });
}

function refuseRoot(runAs: string): AgentError {
  return new AgentError(
    "NBF_RUN_AS_ROOT_REFUSED",
    `the notebook server would run as root (run-as user ${JSON.stringify(runAs)}); ` +
      "choose an unprivileged user or pass --allow-root",
    { runAs },
  );
}

/** Parses one `getent passwd` line: name:password:uid:gid:gecos:home:shell. */
export function parsePasswdLine(line: string): RunAsUser | null {
  const fields = line.trim().split(":");
  if (fields.length < 7) return null;
  const uid = Number(fields[2]);
  const gid = Number(fields[3]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) return null;
  return { user: fields[0]!, uid, gid, home: fields[5]! };
}

/**
 * null = run as the agent's own user (the agent is not root, or root is explicitly allowed and
 * asked for). Otherwise the user exists afterwards and its ids are returned.
 */
export async function resolveRunAs(options: ResolveRunAsOptions): Promise<RunAsUser | null> {
  if (!options.isRoot) return null;
  const { runAs } = options;
  if (runAs === "root") {
    if (options.allowRoot) return null;
    throw refuseRoot(runAs);
  }
  if (!USER_NAME.test(runAs) || runAs.length > 32) {
    throw new AgentError("NBF_INVALID_INPUT", `run-as user name is not valid: ${JSON.stringify(runAs)}`, {
      runAs,
    });
  }
  const runner = options.runner ?? spawnRunner;

  const exists = await runner(["id", "-u", runAs]);
  if (exists.code !== 0) {
    const create = ["useradd", "--system", "--create-home", "--shell", "/usr/sbin/nologin", runAs];
    const created = await underUsersLock(create, runner);
    // 9: another agent created it meanwhile (useradd checks under the lock, so it is whole).
    if (created.code !== 0 && created.code !== USERADD_NAME_IN_USE) {
      throw new AgentError(
        "NBF_USER_SETUP_FAILED",
        `could not create the notebook user ${runAs}: \`${commandLine(create)}\` exited ${created.code}: ` +
          `${created.stderr.trim() || created.stdout.trim()}`,
        { runAs, command: commandLine(create), exitCode: created.code, stderr: created.stderr.trim() },
      );
    }
  }

  const lookup = ["getent", "passwd", runAs];
  const entry = await runner(lookup);
  const parsed = entry.code === 0 ? parsePasswdLine(entry.stdout.split("\n")[0] ?? "") : null;
  if (!parsed) {
    throw new AgentError(
      "NBF_USER_SETUP_FAILED",
      `could not read the notebook user ${runAs}: \`${commandLine(lookup)}\` exited ${entry.code}`,
      { runAs, command: commandLine(lookup), exitCode: entry.code, stdout: entry.stdout.trim() },
    );
  }
  if (parsed.uid === 0) {
    if (options.allowRoot) return null;
    throw refuseRoot(runAs);
  }
  return parsed;
}

/**
 * The first directory on the way to `dir` (itself included) that `who` cannot search, or null
 * when every one is searchable. Without `who`, "searchable by others" (mode & 0o001) is required.
 * Supplementary groups are not considered, so the answer errs on the safe side.
 */
export async function ensureTraversable(
  dir: string,
  who?: { uid: number; gid: number } | null,
): Promise<string | null> {
  if (who?.uid === 0) return null;
  const chain: string[] = [];
  for (let current = path.resolve(dir); ; current = path.dirname(current)) {
    chain.unshift(current);
    if (path.dirname(current) === current) break;
  }
  for (const current of chain) {
    let info: Awaited<ReturnType<typeof stat>>;
    try {
      info = await stat(current);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw error;
    }
    let bit = 0o001;
    if (who && info.uid === who.uid) bit = 0o100;
    else if (who && info.gid === who.gid) bit = 0o010;
    if ((info.mode & bit) === 0) return current;
  }
  return null;
}

/** ensureTraversable as a precondition: throws NBF_USER_SETUP_FAILED naming the directory. */
export async function assertTraversable(dir: string, user: RunAsUser): Promise<void> {
  const blocked = await ensureTraversable(dir, user);
  if (blocked === null) return;
  const mode = ((await stat(blocked)).mode & 0o777).toString(8).padStart(4, "0");
  throw new AgentError(
    "NBF_USER_SETUP_FAILED",
    `the notebook user ${user.user} cannot reach ${dir}: ${blocked} (mode ${mode}) is not searchable by it; ` +
      `use a data directory outside it (e.g. /var/lib/nbfleet) or run \`chmod o+x ${blocked}\``,
    { dir, blocked, mode, user: user.user },
  );
}
