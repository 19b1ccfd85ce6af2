/**
 * `pnpm bench`: runs the benchmarks, prints a Markdown table (pasted into the README) and
 * writes the raw figures to bench/results/latest.json.
 *
 *   pnpm bench [--only agent] [--idle 60] [--rounds 5]
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runAgentBench } from "./src/agent-bench.js";
import { describeMachine, median, quantile } from "./src/machine.js";

const { values } = parseArgs({
  options: {
    only: { type: "string" },
    idle: { type: "string", default: "60" },
    rounds: { type: "string", default: "5" },
  },
});

const rows: string[][] = [];
const raw: Record<string, unknown> = { machine: describeMachine(), at: new Date().toISOString() };
const fmt = (n: number, digits = 1) => n.toFixed(digits);

if (!values.only || values.only === "agent") {
  const result = await runAgentBench({ idleWindowSec: Number(values.idle), rounds: Number(values.rounds) });
  raw.agent = result;
  rows.push(
    ["agent idle RSS (max over window)", `${fmt(result.agentRssMB)} MB`, "≤ 60 MB", result.runtime],
    ["agent idle CPU", `${fmt(result.agentCpuPercent, 2)} %`, "≤ 1 %", `${result.idleWindowSec} s window`],
    [
      "notebook restart until healthy / bare start until /api",
      `${fmt(result.restartRatio, 2)}× (${fmt(median(result.agentRestartMs), 0)} ms / ${fmt(median(result.bareStartMs), 0)} ms)`,
      "≤ 1.3×",
      `medians of ${result.agentRestartMs.length}; p90 restart ${fmt(quantile(result.agentRestartMs, 0.9), 0)} ms`,
    ],
  );
}

const table = [
  `Machine: ${raw.machine}`,
  "",
  "| figure | measured | goal | notes |",
  "|---|---|---|---|",
  ...rows.map((r) => `| ${r.join(" | ")} |`),
].join("\n");
console.log(table);
const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), "results");
await mkdir(dir, { recursive: true });
await writeFile(path.join(dir, "latest.json"), `${JSON.stringify(raw, null, 2)}\n`);
await writeFile(path.join(dir, "latest.md"), `${table}\n`);
process.exit(0);
