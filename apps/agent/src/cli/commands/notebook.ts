/** `nbfleet-agent start|stop|restart`: the notebook server's life, through the running agent. */
import type { Command } from "commander";
import { type DataDirOption, runCommand, withDataDir } from "../context.js";

export function registerNotebook(program: Command): void {
  const notebookCommand = (name: "start" | "stop" | "restart", description: string) =>
    withDataDir(program.command(name))
      .description(description)
      .option("--json", "print JSON")
      .action(async (opts: DataDirOption) => runCommand(opts, `notebook.${name}`, {}));
  notebookCommand("start", "start the notebook server");
  notebookCommand("stop", "stop the notebook server (SIGTERM, then SIGKILL after the grace period)");
  notebookCommand("restart", "restart the notebook server and wait until it answers");
}
