/** `nbfleet-agent check`: every health check now, the deep kernel check too. */
import type { Command } from "commander";
import { type DataDirOption, runCommand, withDataDir } from "../context.js";

export function registerCheck(program: Command): void {
  withDataDir(program.command("check"))
    .description("run every check now, including the deep kernel check (start a kernel, draw a plot)")
    .option("--json", "print JSON")
    .action(async (opts: DataDirOption) => runCommand(opts, "diagnose", {}));
}
