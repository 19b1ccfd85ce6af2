/**
 * Who a terminal session runs as and in what environment: the notebook's user (its uid, gid
 * and home when the agent is root and the notebook runs as an unprivileged user; the agent's
 * own user otherwise), that user's login shell — or bash/sh when the account has none, as the
 * `nbfleet` user made with nologin — and a small clean environment with TERM=xterm-256color.
 */
import { constants, access } from "node:fs/promises";
import os from "node:os";
import { spawnRunner } from "../install/command-runner.js";
import type { RunAsUser } from "../profile/user.js";

export interface TerminalTarget {
  /** null: the agent's own user. */
  user: RunAsUser | null;
  /** Where sessions start; the user's home when absent. */
  cwd?: string;
}

export interface SessionLaunch {
  shell: string;
  cwd: string;
  env: Record<string, string>;
  /** Set only when switching user (the agent is root). */
  uid?: number;
  gid?: number;
}

const NO_LOGIN = /(nologin|false|true)$/;
const FALLBACK_SHELLS = ["/bin/bash", "/bin/sh"];
const SETPRIV = ["/usr/bin/setpriv", "/bin/setpriv", "/usr/sbin/setpriv"];

export async function sessionLaunch(target: TerminalTarget): Promise<SessionLaunch> {
  const own = os.userInfo();
  const user = target.user?.user ?? own.username;
  const home = target.user?.home ?? own.homedir;
  const declared = target.user ? await passwdShell(target.user.user) : own.shell;
  const shell = await usableShell(declared);
  const cwd = target.cwd ?? ((await isDirectory(home)) ? home : "/");
  return {
    shell,
    cwd,
    env: {
      TERM: "xterm-256color",
      COLORTERM: "truecolor",
      HOME: home,
      USER: user,
      LOGNAME: user,
      SHELL: shell,
      PATH: process.env.PATH ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
      LANG: process.env.LANG ?? "C.UTF-8",
    },
    ...(target.user ? { uid: target.user.uid, gid: target.user.gid } : {}),
  };
}

/**
 * The program and arguments that start a session: a login shell, or `command` run by it. When
 * the user changes, util-linux `setpriv` switches it with the user's own supplementary groups
 * (node-pty alone would keep the agent's); without setpriv the spawn's uid/gid are used.
 */
export async function sessionCommand(
  launch: SessionLaunch,
  command: string | undefined,
): Promise<{ file: string; args: string[]; uid?: number; gid?: number }> {
  const args = command === undefined ? ["-l"] : ["-l", "-c", command];
  if (launch.uid === undefined || launch.gid === undefined) return { file: launch.shell, args };
  const setpriv = await firstExecutable(SETPRIV);
  if (!setpriv) return { file: launch.shell, args, uid: launch.uid, gid: launch.gid };
  return {
    file: setpriv,
    args: [`--reuid=${launch.uid}`, `--regid=${launch.gid}`, "--init-groups", "--", launch.shell, ...args],
  };
}

async function firstExecutable(candidates: string[]): Promise<string | null> {
  for (const candidate of candidates) if (await executable(candidate)) return candidate;
  return null;
}

async function passwdShell(user: string): Promise<string | null> {
  const entry = await spawnRunner(["getent", "passwd", user]);
  if (entry.code !== 0) return null;
  return entry.stdout.split("\n")[0]?.split(":")[6]?.trim() || null;
}

async function usableShell(declared: string | null | undefined): Promise<string> {
  for (const candidate of [declared, ...FALLBACK_SHELLS]) {
    if (!candidate || NO_LOGIN.test(candidate)) continue;
    if (await executable(candidate)) return candidate;
  }
  return "/bin/sh";
}

function executable(file: string): Promise<boolean> {
  return access(file, constants.X_OK).then(
    () => true,
    () => false,
  );
}

function isDirectory(dir: string): Promise<boolean> {
  return access(dir, constants.R_OK | constants.X_OK).then(
    () => true,
    () => false,
  );
}
