/** `nbfleet-agent install`: install Jupyter when missing and record what was found. */
import type { Command } from "commander";
import { dataPaths } from "../../config/paths.js";
import { formatPlan } from "../../install/plan.js";
import { ensureInstalled } from "../../install/run.js";
import { type DataDirOption, print, withDataDir } from "../context.js";

export function registerInstall(program: Command): void {
  withDataDir(program.command("install"))
    .description("install Jupyter if missing (idempotent) and record the detected generation and version")
    .option("--dry-run", "print the plan, run nothing")
    .option("--json", "print JSON")
    .action(async (opts: DataDirOption & { dryRun?: boolean }) => {
      const result = await ensureInstalled({
        paths: dataPaths(opts.dataDir),
        dryRun: Boolean(opts.dryRun),
        isRoot: process.getuid?.() === 0,
        onProgress: (message) => !opts.json && console.error(`… ${message}`),
      });
      print(opts.json, result, () =>
        result.action === "dry-run"
          ? formatPlan(result.plan)
          : `${result.action}: ${result.record.generation} ${result.record.version} (${result.record.jupyterPath})`,
      );
    });
}
