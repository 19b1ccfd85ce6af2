/** Installing and detecting Jupyter: the public surface of this folder. */
export { type CommandResult, type CommandRunner, type RunOptions, spawnRunner } from "./command-runner.js";
export {
  type DetectOptions,
  type JupyterGeneration,
  type JupyterInstallation,
  type ModuleVersions,
  classify,
  detectJupyter,
  readModuleVersions,
  shebangInterpreter,
} from "./detect.js";
export { type InstallPlatform, detectPlatform, parseOsRelease, readOsRelease } from "./os-release.js";
export { type PackageLockInfo, packageLockHeld } from "./package-lock.js";
export {
  type InstallPlan,
  type InstallStep,
  formatCommand,
  formatPlan,
  planInstall,
  planNeedsRoot,
} from "./plan.js";
export {
  DEFAULT_LOCK_RETRY,
  type EnsureInstalledOptions,
  type EnsureInstalledResult,
  InstallRecord,
  type LockRetry,
  type RunPlanOptions,
  type Sleep,
  defaultVenvDir,
  ensureInstalled,
  readInstallRecord,
  runPlan,
} from "./run.js";
