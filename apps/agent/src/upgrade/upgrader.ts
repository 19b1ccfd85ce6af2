/**
 * The agent's side of `agent.upgrade`: installs another version beside the running one and
 * switches to it, the notebook server untouched.
 *
 *   same version? ─▶ signature (release key) ─▶ download (bytes, deadline) ─▶ sha256
 *     ─▶ unpack + manifest ─▶ upgrade.json ─▶ previous → old, current → new ─▶ answer, exit 75
 *
 * Every check runs before anything is unpacked or switched; a refusal (NBF_ARTIFACT_REFUSED)
 * names the check that failed and leaves `current` as it was. After the switch the caller ends
 * the agent (status 75, the notebook left running) and the launcher starts the new version; it
 * rolls back on its own when the new agent does not confirm (confirm.ts) by `deadline`.
 */
import { mkdir, readFile, rm } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { CommandParamsOf } from "@nbfleet/shared";
import { verifyArtifact } from "@nbfleet/shared/artifact-signature";
import { AgentError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { type ArtifactSource, DownloadBrokeOff, downloadArtifact } from "./download.js";
import { type InstallLayout, type PendingUpgrade, installLayout, versionLink } from "./install-layout.js";
import { readPendingUpgrade } from "./pending.js";
import { unpackArtifact } from "./unpack.js";
import { pointLink, readVersionLink } from "./version-links.js";

/** The launcher's exit status for "start the (new) current version at once". */
export const UPGRADE_EXIT_CODE = 75;
export const DEFAULT_UPGRADE_TIMEOUT_SEC = 120;
const DEFAULT_DOWNLOAD_TIMEOUT_MS = 300_000;
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 5000;

export type UpgradeParams = CommandParamsOf<"agent.upgrade">;
export type UpgradeAnswer = { version: string; alreadyCurrent: true } | { from: string; to: string };

export interface UpgraderOptions {
  installDir: string;
  releaseKeyFile: string;
  /** The version running now (what the hello reports). */
  currentVersion: string;
  /** The controller the link is connected to, with its trust; null while there is none. */
  source: () => ArtifactSource | null | Promise<ArtifactSource | null>;
  /** The whole download must finish within this (default 5 min). */
  downloadTimeoutMs?: number;
  /** When the command gives no timeoutSec (default NBFLEET_UPGRADE_TIMEOUT_SEC, else 120). */
  defaultTimeoutSec?: number;
  now?: () => number;
}

export class Upgrader {
  readonly layout: InstallLayout;
  private underWay: string | null = null;
  private readonly switchedTo: Promise<PendingUpgrade>;
  private announceSwitch!: (pending: PendingUpgrade) => void;

  constructor(private readonly options: UpgraderOptions) {
    this.layout = installLayout(options.installDir);
    this.switchedTo = new Promise((resolve) => {
      this.announceSwitch = resolve;
    });
  }

  get currentVersion(): string {
    return this.options.currentVersion;
  }

  /** Resolves once `current` points at a new version: the agent should then end (status 75). */
  get switched(): Promise<PendingUpgrade> {
    return this.switchedTo;
  }

  async upgrade(
    commandId: string,
    params: UpgradeParams,
    progress: (message: string) => void,
  ): Promise<UpgradeAnswer> {
    const from = this.options.currentVersion;
    if (params.version === from) return { version: from, alreadyCurrent: true };
    if (this.underWay !== null) {
      throw unavailable(`an upgrade to ${this.underWay} is already under way on this agent`);
    }
    this.underWay = params.version;
    try {
      return await this.install(commandId, params, progress);
    } finally {
      this.underWay = null;
    }
  }

  private async install(
    commandId: string,
    params: UpgradeParams,
    progress: (message: string) => void,
  ): Promise<UpgradeAnswer> {
    const { layout } = this;
    const from = this.options.currentVersion;
    const to = params.version;
    const pending = await readPendingUpgrade(layout);
    if (pending) {
      throw unavailable(
        `the upgrade from ${pending.from} to ${pending.to} is not confirmed yet (${layout.upgradeFile})`,
      );
    }
    const fromDir = await readVersionLink(layout.current);
    if (fromDir === null) {
      throw unavailable(
        `${layout.current} is missing: this install directory was not laid out by the bootstrap`,
      );
    }
    const toDir = versionLink(to);
    if (path.resolve(layout.installDir, fromDir) === path.resolve(layout.installDir, toDir)) {
      throw unavailable(`${layout.current} already points at ${toDir}, but this agent is ${from}`);
    }
    await this.checkSignature(params);

    progress(`downloading agent ${to} (${params.bytes} bytes)`);
    await mkdir(layout.downloadsDir, { recursive: true, mode: 0o700 });
    const file = path.join(layout.downloadsDir, `${to}.tar.gz`);
    try {
      const sha256 = await this.download(params, file, progress);
      if (sha256 !== params.sha256) {
        throw refused(to, `sha256 check failed: expected ${params.sha256}, the download has ${sha256}`);
      }
      progress(`agent ${to} verified (sha256 and release signature); unpacking`);
      await unpackArtifact(file, path.join(layout.installDir, toDir), to);
    } finally {
      await rm(file, { force: true });
    }

    const now = this.options.now?.() ?? Date.now();
    const timeoutSec = params.timeoutSec ?? this.options.defaultTimeoutSec ?? defaultTimeoutSec();
    const deadline = now + timeoutSec * 1000;
    const record: PendingUpgrade = {
      commandId,
      from,
      to,
      fromDir,
      toDir,
      startedAt: new Date(now).toISOString(),
      deadline: new Date(deadline).toISOString(),
      deadlineUnix: Math.ceil(deadline / 1000),
    };
    // upgrade.json first: a launcher that finds `current` switched always finds it pending too.
    await writeFileAtomic(layout.upgradeFile, `${JSON.stringify(record)}\n`, { mode: 0o600 });
    await pointLink(layout.previous, fromDir);
    await pointLink(layout.current, toDir);
    progress(`switched to agent ${to}; restarting the agent (the notebook server keeps running)`);
    this.announceSwitch(record);
    return { from, to };
  }

  /**
   * Downloads until it worked or the download deadline passed: a transfer that broke off (the
   * controller restarting, a replica going away) is tried again, on whatever controller the link
   * is connected to by then; a refusal of what was served is not.
   */
  private async download(
    params: UpgradeParams,
    file: string,
    progress: (message: string) => void,
  ): Promise<string> {
    const deadline = Date.now() + (this.options.downloadTimeoutMs ?? DEFAULT_DOWNLOAD_TIMEOUT_MS);
    for (let attempt = 1; ; attempt++) {
      let last: AgentError;
      try {
        const source = await this.options.source();
        if (!source) throw unavailable("the agent is not connected to a controller to download from");
        return await downloadArtifact({
          source,
          version: params.version,
          bytes: params.bytes,
          file,
          deadlineMs: Math.max(1, deadline - Date.now()),
        });
      } catch (error) {
        const retry =
          error instanceof DownloadBrokeOff ||
          (error instanceof AgentError && error.code === "NBF_UPGRADE_UNAVAILABLE");
        if (!retry) throw error;
        last = error;
      }
      const wait = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (attempt - 1), deadline - Date.now());
      if (wait <= 0) {
        throw new AgentError(last.code, `${last.message} (gave up after ${attempt} attempts)`, last.details);
      }
      progress(`the download failed (${last.message}); trying again in ${Math.ceil(wait / 1000)} s`);
      await sleep(wait);
    }
  }

  private async checkSignature(params: UpgradeParams): Promise<void> {
    let key: string;
    try {
      key = await readFile(this.options.releaseKeyFile, "utf8");
    } catch (error) {
      throw refused(
        params.version,
        `signature check impossible: cannot read the release key ${this.options.releaseKeyFile} (${(error as Error).message})`,
      );
    }
    if (!verifyArtifact(key, params.version, params.sha256, params.signature)) {
      throw refused(
        params.version,
        `signature check failed: the signature over version ${params.version} and sha256 ${params.sha256} does not verify with the release key in ${this.options.releaseKeyFile}`,
      );
    }
  }
}

/** NBFLEET_UPGRADE_TIMEOUT_SEC when it is a whole number of seconds in 10..3600, else 120. */
export function defaultTimeoutSec(env: NodeJS.ProcessEnv = process.env): number {
  const value = Number(env.NBFLEET_UPGRADE_TIMEOUT_SEC);
  return Number.isInteger(value) && value >= 10 && value <= 3600 ? value : DEFAULT_UPGRADE_TIMEOUT_SEC;
}

function refused(version: string, why: string): AgentError {
  return new AgentError("NBF_ARTIFACT_REFUSED", `artifact ${version} refused: ${why}; nothing was switched`, {
    version,
  });
}

function unavailable(why: string): AgentError {
  return new AgentError("NBF_UPGRADE_UNAVAILABLE", why);
}
