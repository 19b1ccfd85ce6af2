/** `nbfleet-agent logs`: the notebook server's or the agent's log, read from DIR (`-f` keeps following). */
import { open, stat } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { integerIn, oneOf } from "@nbfleet/shared/cli-parse";
import type { Command } from "commander";
import { dataPaths } from "../../config/paths.js";
import { tailLines } from "../../supervisor/log-file.js";
import { type DataDirOption, withDataDir } from "../context.js";

export function registerLogs(program: Command): void {
  withDataDir(program.command("logs"))
    .description("print the notebook server's (or the agent's) log")
    .option("-n, --lines <n>", "how many lines", integerIn("--lines", 1, 100_000), 100)
    .option(
      "--source <source>",
      "notebook or agent",
      oneOf("--source", ["notebook", "agent"] as const),
      "notebook",
    )
    .option("-f, --follow", "keep printing new lines (survives notebook restarts)")
    .action(
      async (opts: DataDirOption & { lines: number; source: "notebook" | "agent"; follow?: boolean }) => {
        const paths = dataPaths(opts.dataDir);
        const file = opts.source === "agent" ? paths.agentLog : paths.notebookLog;
        for (const line of await tailLines(file, opts.lines)) console.log(line);
        if (opts.follow) await follow(file);
      },
    );
}

/** Prints lines appended to a log; a truncated file (the size cap or a new server) is read from its start. */
async function follow(file: string): Promise<void> {
  let position = await sizeOf(file);
  for (;;) {
    await sleep(250);
    const size = await sizeOf(file);
    if (size < position) position = 0;
    if (size === position) continue;
    const handle = await open(file, "r");
    const buffer = Buffer.alloc(size - position);
    await handle.read(buffer, 0, buffer.length, position);
    await handle.close();
    position = size;
    process.stdout.write(buffer);
  }
}

function sizeOf(file: string): Promise<number> {
  return stat(file).then(
    (s) => s.size,
    () => 0,
  );
}
