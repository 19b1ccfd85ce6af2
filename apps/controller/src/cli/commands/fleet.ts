/** `nbfleet fleet teardown --yes`: deletes what the fleet's machines shared, once none is left. */
import type { FleetTeardownReport } from "@nbfleet/shared";
import type { Command } from "commander";
import { CliError, ExitCode } from "../client.js";
import { type GlobalOptions, clientFrom } from "../context.js";
import { printJson } from "../output.js";

export function registerFleet(program: Command, globals: () => GlobalOptions): void {
  const fleet = program.command("fleet").description("the fleet as a whole");
  fleet
    .command("teardown")
    .description(
      "delete what the fleet's machines shared (Azure: VNet, NSG, the resource group when nothing else is in it); only once no machine is left",
    )
    .option("-y, --yes", "do not ask (required: this cannot be undone)")
    .action(async (opts: { yes?: boolean }) => {
      const g = globals();
      if (!opts.yes)
        throw new CliError(
          "NBF_CONFIRMATION_REQUIRED",
          "tearing the fleet down cannot be undone; pass --yes",
          ExitCode.usage,
        );
      const report = await (await clientFrom(g)).post<FleetTeardownReport>("/v1/fleet/teardown");
      if (g.json) return printJson(report);
      console.log(
        report.deleted.length > 0
          ? `deleted from ${report.provider}: ${report.deleted.join(", ")}`
          : `nothing to delete on ${report.provider}`,
      );
      if (report.keptBecause) console.log(`kept: ${report.keptBecause}`);
    });
}
