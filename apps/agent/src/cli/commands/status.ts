/** `nbfleet-agent status`: the health model, from the running agent or read from DIR. */
import type { Command } from "commander";
import { dataPaths } from "../../config/paths.js";
import { fetchState, isAgentRunning } from "../../control/client.js";
import { type DataDirOption, print, withDataDir } from "../context.js";
import { formatState } from "../format-state.js";
import { inspectOffline } from "../offline-status.js";

export function registerStatus(program: Command): void {
  withDataDir(program.command("status"))
    .description("print the health model (works while `up` runs in another process)")
    .option("--json", "print JSON")
    .action(async (opts: DataDirOption) => {
      const paths = dataPaths(opts.dataDir);
      const running = await isAgentRunning(paths.controlSocket);
      const state = running ? await fetchState(paths.controlSocket) : await inspectOffline(paths);
      const value = { agent: running ? "running" : "not_running", ...state };
      print(opts.json, value, () => formatState(value.agent, state));
      if (state.health.status !== "healthy") process.exitCode = 3;
    });
}
