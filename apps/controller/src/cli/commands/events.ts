/** `nbfleet events [--vm NAME] [--kind PREFIX] [-f]`: the fleet's event stream (SSE). */
import type { FleetEventView } from "@nbfleet/shared";
import type { Command } from "commander";
import { type GlobalOptions, clientFrom } from "../context.js";

export function registerEvents(program: Command, globals: () => GlobalOptions): void {
  program
    .command("events")
    .description("recent fleet events; -f keeps following (reconnects resume where they left off)")
    .option("--vm <name>", "only this machine")
    .option("--kind <prefix>", "only kinds starting with this, e.g. notebook.")
    .option("-f, --follow", "keep streaming new events")
    .action(async (opts: { vm?: string; kind?: string; follow?: boolean }) => {
      const g = globals();
      const client = await clientFrom(g);
      const query = new URLSearchParams();
      if (opts.vm) query.set("vm", opts.vm);
      if (opts.kind) query.set("kind", opts.kind);
      query.set("after", "0");
      const controller = new AbortController();
      const response = await client.stream(`/v1/events?${query}`, {}, controller.signal);
      const decoder = new TextDecoder();
      let buffer = "";
      let quietTimer: NodeJS.Timeout | undefined;
      // Without --follow: print what is stored, then stop once the stream goes quiet.
      const armQuiet = () => {
        if (opts.follow) return;
        clearTimeout(quietTimer);
        quietTimer = setTimeout(() => controller.abort(), 500);
      };
      armQuiet();
      try {
        for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
          buffer += decoder.decode(chunk, { stream: true });
          let end = buffer.indexOf("\n\n");
          while (end >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const data = block
              .split("\n")
              .filter((l) => l.startsWith("data:"))
              .map((l) => l.slice(5).trim())
              .join("\n");
            if (data) print(JSON.parse(data) as FleetEventView, Boolean(g.json));
            end = buffer.indexOf("\n\n");
          }
          armQuiet();
        }
      } catch (error) {
        if (!controller.signal.aborted) throw error;
      } finally {
        clearTimeout(quietTimer);
      }
    });
}

function print(event: FleetEventView, json: boolean): void {
  if (json) console.log(JSON.stringify(event));
  else
    console.log(
      `${event.at} ${event.level.padEnd(5)} ${(event.vmName ?? "-").padEnd(16)} ${event.kind}: ${event.message}`,
    );
}
