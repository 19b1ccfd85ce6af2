/** `nbfleet-agent events`: the running agent's recent events. */
import { integerIn } from "@nbfleet/shared/cli-parse";
import type { Command } from "commander";
import { dataPaths } from "../../config/paths.js";
import { fetchEvents } from "../../control/client.js";
import { type DataDirOption, print, withDataDir } from "../context.js";

export function registerEvents(program: Command): void {
  withDataDir(program.command("events"))
    .description("print the agent's recent events (starts, crashes, restarts, certificate changes)")
    .option("-n, --lines <n>", "how many events", integerIn("--lines", 1, 1000), 50)
    .option("--json", "print JSON")
    .action(async (opts: DataDirOption & { lines: number }) => {
      const paths = dataPaths(opts.dataDir);
      const events = await fetchEvents(paths.controlSocket, opts.lines);
      print(opts.json, events, () =>
        events.map((e) => `${e.at} ${e.level} ${e.kind}: ${e.message}`).join("\n"),
      );
    });
}
