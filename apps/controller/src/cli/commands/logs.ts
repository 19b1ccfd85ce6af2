/**
 * `nbfleet logs NAME [-f] [-n N] [--source notebook|agent]`: the notebook server's (or the
 * agent's) log; `-f` keeps following, across notebook restarts, until Ctrl-C or until the
 * agent's connection ends (then exit 1 with the reason). `--json` prints the NDJSON records.
 */
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { ExitCode } from "../client.js";
import { type GlobalOptions, clientFrom } from "../context.js";
import { integerIn } from "../parse.js";

interface LogRecord {
  line?: string;
  end?: { code: string; message: string };
}

export function registerLogs(program: Command, globals: () => GlobalOptions): void {
  program
    .command("logs <name>")
    .description("the notebook server's log (or the agent's); -f follows it")
    .option("-f, --follow", "keep printing new lines (survives notebook restarts)")
    .option("-n, --lines <n>", "how many existing lines to show first", integerIn("--lines", 0, 10_000), 100)
    .option("--source <source>", "notebook or agent", sourceOf, "notebook")
    .action(async (name: string, opts: { follow?: boolean; lines: number; source: string }) => {
      const g = globals();
      const client = await clientFrom(g);
      const query = new URLSearchParams({
        lines: String(opts.lines),
        source: opts.source,
        format: "ndjson",
        ...(opts.follow ? { follow: "1" } : {}),
      });
      const response = await client.stream(`/v1/vms/${encodeURIComponent(name)}/logs?${query}`, {
        accept: "application/x-ndjson",
      });
      const decoder = new TextDecoder();
      let buffer = "";
      const print = (text: string) => {
        if (!text) return;
        const record = JSON.parse(text) as LogRecord;
        if (g.json) console.log(text);
        else if (record.line !== undefined) process.stdout.write(`${record.line}\n`);
        if (record.end) {
          if (!g.json) console.error(`nbfleet: ${record.end.message} [${record.end.code}]`);
          process.exitCode = ExitCode.failure;
        }
      };
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(chunk, { stream: true });
        let newline = buffer.indexOf("\n");
        while (newline >= 0) {
          print(buffer.slice(0, newline));
          buffer = buffer.slice(newline + 1);
          newline = buffer.indexOf("\n");
        }
      }
      print(buffer.trim());
    });
}

function sourceOf(raw: string): string {
  if (raw !== "notebook" && raw !== "agent") {
    throw new InvalidArgumentError(`--source must be notebook or agent, got '${raw}'`);
  }
  return raw;
}
