/** `nbfleet replicas [--all]`: the controller's replicas, their agents and heartbeats. */
import type { ReplicaList } from "@nbfleet/shared";
import type { Command } from "commander";
import { type GlobalOptions, clientFrom } from "../context.js";
import { ago, printJson, table } from "../output.js";

export function registerReplicas(program: Command, globals: () => GlobalOptions): void {
  program
    .command("replicas")
    .description("list the controller's replicas (live ones; --all: also dead ones not yet removed)")
    .option("--all", "include dead replicas")
    .action(async (opts: { all?: boolean }) => {
      const g = globals();
      const result = await (await clientFrom(g)).get<ReplicaList>(
        `/v1/replicas${opts.all ? "?all=true" : ""}`,
      );
      if (g.json) return printJson(result.items);
      console.log(
        table(
          ["ID", "URL", "VERSION", "AGENTS", "HEARTBEAT", "STARTED", "STATE", "CLOCK", "KEY"],
          result.items.map((r) => [
            r.self ? `${r.id} *` : r.id,
            r.url,
            r.version,
            String(r.agents),
            ago(r.lastHeartbeatAt),
            ago(r.startedAt),
            r.alive ? "alive" : "dead",
            clockOffset(r.clockOffsetMs),
            r.keySha256 ? `${r.keySha256.slice(0, 11)}…` : "-",
          ]),
        ),
      );
    });
}

/** The replica's clock against the database server's: `+0.004s`, `-31.2s`; `-` when unknown. */
export function clockOffset(ms: number | null): string {
  if (ms === null) return "-";
  const seconds = Math.abs(ms) >= 10_000 ? (ms / 1000).toFixed(1) : (ms / 1000).toFixed(3);
  return `${ms >= 0 ? "+" : ""}${seconds}s`;
}
