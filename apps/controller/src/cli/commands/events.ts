/**
 * `nbfleet events [--vm NAME] [--kind PREFIX] [-f]`: the fleet's event stream (SSE). With
 * `-f`, when the controller ends the stream (a restart, or this reader fell too far behind and
 * was let go) it reconnects after the last event it printed, so nothing is missed or repeated.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { FleetEventView } from "@nbfleet/shared";
import type { Command } from "commander";
import { createParser } from "eventsource-parser";
import type { ApiClient } from "../client.js";
import { type GlobalOptions, clientFrom } from "../context.js";

/** Consecutive failed reconnects before `-f` gives up. */
const MAX_RECONNECT_FAILURES = 10;
const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 5000;

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
      const json = Boolean(g.json);
      let lastId = "0";
      let failures = 0;
      for (;;) {
        try {
          await readStream(client, opts, lastId, (id, event) => {
            print(event, json);
            lastId = id;
            failures = 0;
          });
          if (!opts.follow) return;
        } catch (error) {
          if (!opts.follow || ++failures >= MAX_RECONNECT_FAILURES) throw error;
        }
        await sleep(Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** failures));
      }
    });
}

/** One connection: prints stored events after `after`, then live ones until the stream ends. */
async function readStream(
  client: ApiClient,
  opts: { vm?: string; kind?: string; follow?: boolean },
  after: string,
  onEvent: (id: string, event: FleetEventView) => void,
): Promise<void> {
  const query = new URLSearchParams();
  if (opts.vm) query.set("vm", opts.vm);
  if (opts.kind) query.set("kind", opts.kind);
  query.set("after", after);
  const controller = new AbortController();
  const response = await client.stream(`/v1/events?${query}`, {}, controller.signal);
  const decoder = new TextDecoder();
  const parser = createParser({
    onEvent: ({ id, data }) => {
      if (data && id) onEvent(id, JSON.parse(data) as FleetEventView);
    },
  });
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
      parser.feed(decoder.decode(chunk, { stream: true }));
      armQuiet();
    }
  } catch (error) {
    // Our own quiet-stop, or (following) the connection ended: the caller decides.
    if (!controller.signal.aborted && !opts.follow) throw error;
  } finally {
    clearTimeout(quietTimer);
  }
}

function print(event: FleetEventView, json: boolean): void {
  if (json) console.log(JSON.stringify(event));
  else
    console.log(
      `${event.at} ${event.level.padEnd(5)} ${(event.vmName ?? "-").padEnd(16)} ${event.kind}: ${event.message}`,
    );
}
