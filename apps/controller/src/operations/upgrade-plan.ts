/**
 * An agent.upgrade operation's plan, made once when it is created: the version's record from the
 * artifact catalog becomes the command's params (stored with the operation, so a resumed
 * operation sends the very same artifact), plus the timeouts and the canary.
 */
import type { CommandParamsOf } from "@nbfleet/shared";
import { isArtifactVersion } from "@nbfleet/shared/artifact-signature";
import type { ArtifactCatalog } from "../artifacts/catalog.js";
import { NbfError } from "../errors.js";
import type { CreateOperationInput } from "./engine.js";
import type { UpgradePlan } from "./execute-target.js";

/** When neither the operation nor NBFLEET_UPGRADE_TIMEOUT_SEC names one (the guest's default too). */
export const DEFAULT_UPGRADE_TIMEOUT_SEC = 120;
export const DEFAULT_CANARY_SOAK_SEC = 60;

/**
 * How long past the guest's timeout the controller still waits: the launcher rolls back at the
 * timeout, then the previous agent starts, connects and reports the rollback. At least 15 s: on
 * a busy guest that takes more than 5 s, and a rollback reported late was called a timeout.
 */
export function upgradeGraceSec(timeoutSec: number): number {
  return Math.min(60, Math.max(15, Math.ceil(timeoutSec / 4)));
}

export async function upgradePlan(
  input: CreateOperationInput,
  artifacts: ArtifactCatalog | undefined,
  defaultTimeoutSec = DEFAULT_UPGRADE_TIMEOUT_SEC,
): Promise<{ plan: UpgradePlan; commandParams: CommandParamsOf<"agent.upgrade"> }> {
  const { params = {} } = input;
  const problems: string[] = [];
  if (params.version === undefined)
    problems.push("agent.upgrade needs params.version (the version to install)");
  else if (!isArtifactVersion(params.version))
    problems.push(`params.version must look like 1.2.3 (semver), got '${params.version}'`);
  if (problems.length > 0) throw new NbfError("NBF_OPERATION_INVALID", { problem: problems.join("; ") });
  const version = params.version!;
  const record = (await artifacts?.get(version)) ?? null;
  if (!record) {
    const known = artifacts ? (await artifacts.list()).map((a) => a.version) : [];
    throw new NbfError("NBF_ARTIFACT_NOT_FOUND", {
      version,
      known: known.length > 0 ? known.join(", ") : "none",
    });
  }
  const timeoutSec = params.timeoutSec ?? defaultTimeoutSec;
  const canary = input.canary ?? 0;
  return {
    plan: {
      version,
      timeoutSec,
      graceSec: upgradeGraceSec(timeoutSec),
      canary,
      canarySoakSec: input.canarySoakSec ?? DEFAULT_CANARY_SOAK_SEC,
    },
    commandParams: {
      version,
      sha256: record.sha256,
      signature: record.signature,
      bytes: record.bytes,
      timeoutSec,
    },
  };
}
