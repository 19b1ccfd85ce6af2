/**
 * Makes sure Jupyter is installed, idempotently: an installation that is already there is only
 * recorded; otherwise the platform's plan runs (waiting out a busy package manager), Jupyter is
 * detected again and the result recorded in DIR/state/install.json.
 */
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import * as timers from "node:timers/promises";
import { ValidationError, compileValidator } from "@nbfleet/shared";
import { type Static, Type } from "@sinclair/typebox";
import type { DataPaths } from "../config/paths.js";
import { AgentError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { readTextIfPresent } from "../util/read-if-present.js";
import { type CommandRunner, spawnRunner } from "./command-runner.js";
import { type JupyterInstallation, detectJupyter } from "./detect.js";
import { type InstallPlatform, detectPlatform, readOsRelease } from "./os-release.js";
import { describeHolder, packageLockHeld } from "./package-lock.js";
import { type InstallPlan, formatCommand, formatPlan, planInstall, planNeedsRoot } from "./plan.js";

export interface LockRetry {
  /** Tries in all, the first included. */
  attempts: number;
  initialDelayMs: number;
  factor: number;
  maxDelayMs: number;
}

export const DEFAULT_LOCK_RETRY: LockRetry = {
  attempts: 5,
  initialDelayMs: 2000,
  factor: 2,
  maxDelayMs: 60_000,
};

export type Sleep = (ms: number) => Promise<void>;
const realSleep: Sleep = (ms) => timers.setTimeout(ms);

export const InstallRecord = Type.Object({
  platform: Type.Union([
    Type.Literal("debian"),
    Type.Literal("opensuse"),
    Type.Literal("pip"),
    Type.Literal("windows"),
  ]),
  generation: Type.Union([Type.Literal("notebook6"), Type.Literal("server2")]),
  version: Type.String(),
  notebookVersion: Type.Union([Type.String(), Type.Null()]),
  jupyterServerVersion: Type.Union([Type.String(), Type.Null()]),
  jupyterPath: Type.String({ minLength: 1 }),
  python: Type.String({ minLength: 1 }),
  launch: Type.Array(Type.String(), { minItems: 1 }),
  /** True when this agent ran the install plan; false when it found Jupyter already there. */
  installedByAgent: Type.Boolean(),
  installedAt: Type.String(),
});
export type InstallRecord = Static<typeof InstallRecord>;
const installRecordValidator = compileValidator(InstallRecord, "install record");

export interface RunPlanOptions {
  runner?: CommandRunner;
  sleep?: Sleep;
  lockRetry?: Partial<LockRetry>;
  onProgress?: (message: string) => void;
}

const STDERR_TAIL_LINES = 15;

function tail(text: string, lines = STDERR_TAIL_LINES): string {
  return text.trimEnd().split("\n").slice(-lines).join("\n");
}

/** Runs every step in order; a held package lock is retried with exponential backoff. */
export async function runPlan(plan: InstallPlan, options: RunPlanOptions = {}): Promise<void> {
  const runner = options.runner ?? spawnRunner;
  const sleep = options.sleep ?? realSleep;
  const retry = { ...DEFAULT_LOCK_RETRY, ...options.lockRetry };
  for (const step of plan.steps) {
    const command = formatCommand(step, plan.platform);
    let delay = retry.initialDelayMs;
    let waitedMs = 0;
    for (let attempt = 1; ; attempt++) {
      options.onProgress?.(`${step.description}: ${command}`);
      const result = await runner(step.argv, { env: step.env });
      if (result.code === 0) break;
      const lock = packageLockHeld(step.argv, result);
      if (!lock) {
        throw new AgentError(
          "NBF_INSTALL_FAILED",
          `install step failed (exit ${result.code}): ${command}\n${tail(result.stderr || result.stdout)}`,
          { command, argv: step.argv, exitCode: result.code, stderr: tail(result.stderr) },
        );
      }
      if (attempt >= retry.attempts) {
        const lockName = lock.lock ?? "the package manager lock";
        throw new AgentError(
          "NBF_INSTALL_LOCKED",
          `${lockName} is held by ${describeHolder(lock)}; gave up after ${attempt} tries over ` +
            `${Math.round(waitedMs / 1000)} s. Wait for it to finish (often unattended-upgrades), then run again: ${command}`,
          { command, argv: step.argv, attempts: attempt, waitedMs, ...lock },
        );
      }
      options.onProgress?.(
        `${lock.lock ?? "package lock"} held by ${describeHolder(lock)}; retrying in ${delay} ms`,
      );
      await sleep(delay);
      waitedMs += delay;
      delay = Math.min(delay * retry.factor, retry.maxDelayMs);
    }
  }
}

export interface EnsureInstalledOptions extends RunPlanOptions {
  paths: DataPaths;
  /** Where the pip/windows plans put their venv, and where detection looks first. */
  venvDir?: string;
  dryRun?: boolean;
  isRoot?: boolean;
  /** Run the plan even when Jupyter is already installed (repair; tests of the real apt path). */
  force?: boolean;
  platform?: NodeJS.Platform;
  /** Defaults to reading /etc/os-release. */
  osReleaseText?: string | null;
  /** Defaults to detectJupyter with the real runner; `runner` only runs install steps. */
  detect?: () => Promise<JupyterInstallation | null>;
  now?: () => Date;
}

export type EnsureInstalledResult =
  | { action: "already-installed"; installation: JupyterInstallation; record: InstallRecord }
  | { action: "installed"; plan: InstallPlan; installation: JupyterInstallation; record: InstallRecord }
  | {
      action: "dry-run";
      plan: InstallPlan;
      /** What is installed now; when set, a real run would only record it. */
      installation: JupyterInstallation | null;
      /** The human text to print. */
      text: string;
    };

export function defaultVenvDir(paths: DataPaths): string {
  return path.join(paths.dataDir, "venv");
}

function isRootNow(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

function needsRootError(plan: InstallPlan): AgentError {
  const commands = plan.steps.map((step) => `sudo ${formatCommand(step, plan.platform)}`);
  return new AgentError(
    "NBF_INSTALL_NEEDS_ROOT",
    `Jupyter is not installed and installing it needs root. Run:\n${commands.map((c) => `  ${c}`).join("\n")}\n` +
      "then start the agent again (or run the agent as root).",
    { platform: plan.platform, commands },
  );
}

function describeInstallation(found: JupyterInstallation): string {
  return `${found.generation} (notebook ${found.notebookVersion ?? "-"}, jupyter_server ${found.jupyterServerVersion ?? "-"}) at ${found.jupyterPath}`;
}

export async function ensureInstalled(options: EnsureInstalledOptions): Promise<EnsureInstalledResult> {
  const platform = options.platform ?? process.platform;
  const venvDir = options.venvDir ?? defaultVenvDir(options.paths);
  const detect = options.detect ?? (() => detectJupyter({ venvDir, platform }));
  const now = options.now ?? (() => new Date());
  const osReleaseText = options.osReleaseText !== undefined ? options.osReleaseText : await readOsRelease();
  const installPlatform = detectPlatform({ osReleaseText, platform });
  const plan = planInstall(installPlatform, { venvDir });

  const existing = await detect();
  if (options.dryRun) {
    const text = existing
      ? `Jupyter is already installed: ${describeInstallation(existing)}; nothing to run.\n` +
        (options.force ? formatPlan(plan) : "")
      : formatPlan(plan);
    return { action: "dry-run", plan, installation: existing, text };
  }
  if (existing && !options.force) {
    const record = await recordInstallation(options.paths, installPlatform, existing, false, now);
    return { action: "already-installed", installation: existing, record };
  }
  if (planNeedsRoot(plan) && !(options.isRoot ?? isRootNow())) throw needsRootError(plan);

  await runPlan(plan, options);
  const installation = await detect();
  if (!installation) {
    throw new AgentError(
      "NBF_INSTALL_FAILED",
      `the ${installPlatform} install plan finished but no Jupyter was found in ${venvDir}, /usr/bin or PATH`,
      { platform: installPlatform, venvDir },
    );
  }
  const record = await recordInstallation(options.paths, installPlatform, installation, true, now);
  return { action: "installed", plan, installation, record };
}

async function recordInstallation(
  paths: DataPaths,
  platform: InstallPlatform,
  found: JupyterInstallation,
  ranPlan: boolean,
  now: () => Date,
): Promise<InstallRecord> {
  const previous = await readInstallRecord(paths).catch(() => null);
  const unchanged =
    previous !== null && previous.jupyterPath === found.jupyterPath && previous.version === found.version;
  const record: InstallRecord = {
    platform,
    generation: found.generation,
    version: found.version,
    notebookVersion: found.notebookVersion,
    jupyterServerVersion: found.jupyterServerVersion,
    jupyterPath: found.jupyterPath,
    python: found.python,
    launch: found.launch,
    installedByAgent: ranPlan || (unchanged && previous.installedByAgent),
    installedAt: unchanged && !ranPlan ? previous.installedAt : now().toISOString(),
  };
  await mkdir(path.dirname(paths.installRecord), { recursive: true });
  await writeFileAtomic(paths.installRecord, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o644 });
  return record;
}

/** The recorded installation, or null when none was recorded yet. A corrupt file throws ValidationError. */
export async function readInstallRecord(paths: DataPaths): Promise<InstallRecord | null> {
  const text = await readTextIfPresent(paths.installRecord);
  if (text === null) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ValidationError(`install record ${paths.installRecord}`, [(error as Error).message]);
  }
  return installRecordValidator.check(parsed);
}
