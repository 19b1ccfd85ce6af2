/**
 * `pnpm bench`: runs the benchmarks and writes the table into the README between its bench
 * markers, and the figures to bench/results/latest.{json,md}. With --only, the parts not run are
 * carried over from latest.json (every row of theirs says so, with its date); a part missing
 * there fails the run before anything runs. A part that fails fails the run, and nothing is
 * written.
 *
 *   pnpm bench [--only agent,controller,real,terminal,operations,azure,replicas,console,upgrade,acme] [--readme PATH] [--results DIR]
 *     agent:      [--idle 60] [--rounds 9]
 *     controller: [--agents 10000] [--steady 60] [--commands 1000] [--concurrency 1,50]
 *                 [--queries 200] [--cpu-prof DIR]   (also for operations and replicas)
 *     real:       [--real-agents 3] [--real-restarts 20]
 *     terminal:   [--keystrokes 1000]
 *     operations: [--ops-agents 10000] [--ops-concurrency 500] [--ops-delay-ms 200]
 *                 [--ops-starts 5] [--ops-warm 3]
 *     azure:      [--azure-vms 50] [--azure-429 0.2] [--azure-retry-after-ms 1000] [--azure-rounds 3]
 *     replicas:   [--rep-agents 30000] [--rep-per-fleet 7500] [--rep-steady 30] [--rep-restarts 500]
 *                 [--rep-queries 200] [--rep-bulk-rounds 5] [--rep-single 1]
 *                 [--rep-single-bulk-starts 2] [--rep-single-bulk-warm 2]   (the bulk on one replica)
 *                 [--rep-pg-statements 0]   (1: count the SQL each bulk round ran, pg_stat_statements)
 *                 [--rep-pg-via tcp]   (socket: the controllers reach PostgreSQL over its unix socket)
 *                 (bulk: --ops-concurrency, --ops-delay-ms; the PostgreSQL single controller:
 *                 --agents, --steady, --commands, --concurrency, --queries; its bulk restart
 *                 of --agents: --ops-concurrency, --ops-delay-ms)
 *     console:    [--console-agents 10000] [--console-loads 10] [--console-changes 100]
 *                 [--console-heap-min 5] [--console-changes-per-sec 2]
 *     upgrade:    [--upg-rounds 5] [--upg-agents 10000] [--upg-concurrency 500] [--upg-restart-ms 2000]
 *                 [--upg-fleet-rounds 3]   (--upg-rounds 0 / --upg-agents 0 skip the real / simulated part)
 *     acme:       [--acme-vms 5]
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { buildCliBundle } from "@nbfleet/testkit/cli-bundle";
import { removeMadeDataDirs } from "@nbfleet/testkit/data-dir";
import { runAcmeBench } from "./src/acme-bench.js";
import { runAgentBench } from "./src/agent-bench.js";
import { runAzureBench } from "./src/azure-bench.js";
import { runConsoleBench } from "./src/console-bench.js";
import { runControllerBench } from "./src/controller-bench.js";
import { describeMachine } from "./src/machine.js";
import { runOperationsBench } from "./src/operations-bench.js";
import { checkReadme, writeTableInto } from "./src/readme.js";
import { runRealAgentsBench } from "./src/real-agents-bench.js";
import { runReplicasBench } from "./src/replicas-bench.js";
import {
  type Measured,
  PARTS,
  PART_VERSIONS,
  type PartFigures,
  type PartName,
  type Parts,
  type Results,
  carriedOver,
  isPart,
  readResults,
} from "./src/results.js";
import { renderTable } from "./src/table.js";
import { runTerminalBench } from "./src/terminal-bench.js";
import { runUpgradeBench } from "./src/upgrade-bench.js";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: {
    only: { type: "string" },
    readme: { type: "string", default: path.join(HERE, "../README.md") },
    results: { type: "string", default: path.join(HERE, "results") },
    idle: { type: "string", default: "60" },
    rounds: { type: "string", default: "9" },
    agents: { type: "string", default: "10000" },
    steady: { type: "string", default: "60" },
    commands: { type: "string", default: "1000" },
    concurrency: { type: "string", default: "1,50" },
    queries: { type: "string", default: "200" },
    "cpu-prof": { type: "string" },
    "real-agents": { type: "string", default: "3" },
    "real-restarts": { type: "string", default: "20" },
    keystrokes: { type: "string", default: "1000" },
    "ops-agents": { type: "string", default: "10000" },
    "ops-concurrency": { type: "string", default: "500" },
    "ops-delay-ms": { type: "string", default: "200" },
    "ops-starts": { type: "string", default: "5" },
    "ops-warm": { type: "string", default: "3" },
    "azure-vms": { type: "string", default: "50" },
    "azure-429": { type: "string", default: "0.2" },
    "azure-retry-after-ms": { type: "string", default: "1000" },
    "azure-rounds": { type: "string", default: "3" },
    "rep-agents": { type: "string", default: "30000" },
    "rep-per-fleet": { type: "string", default: "7500" },
    "rep-steady": { type: "string", default: "30" },
    "rep-restarts": { type: "string", default: "500" },
    "rep-queries": { type: "string", default: "200" },
    "rep-bulk-rounds": { type: "string", default: "5" },
    "rep-single": { type: "string", default: "1" },
    "rep-single-bulk-starts": { type: "string", default: "2" },
    "rep-single-bulk-warm": { type: "string", default: "2" },
    "rep-pg-statements": { type: "string", default: "0" },
    "rep-pg-via": { type: "string", default: "tcp" },
    "console-agents": { type: "string", default: "10000" },
    "console-loads": { type: "string", default: "10" },
    "console-changes": { type: "string", default: "100" },
    "console-heap-min": { type: "string", default: "5" },
    "console-changes-per-sec": { type: "string", default: "2" },
    "upg-rounds": { type: "string", default: "5" },
    "upg-agents": { type: "string", default: "10000" },
    "upg-concurrency": { type: "string", default: "500" },
    "upg-restart-ms": { type: "string", default: "2000" },
    "upg-fleet-rounds": { type: "string", default: "3" },
    "acme-vms": { type: "string", default: "5" },
  },
});
const profileDir = values["cpu-prof"] ? { profileDir: path.resolve(values["cpu-prof"]) } : {};

/** Each part: how to run it, and the options it ran with (kept beside its figures). */
const RUNS: { [K in PartName]: { options: string[]; run: () => Promise<PartFigures[K]> } } = {
  agent: {
    options: ["idle", "rounds"],
    run: () => runAgentBench({ idleWindowSec: Number(values.idle), rounds: Number(values.rounds) }),
  },
  controller: {
    options: ["agents", "steady", "commands", "concurrency", "queries"],
    run: () =>
      runControllerBench({
        agents: Number(values.agents),
        steadySec: Number(values.steady),
        commands: Number(values.commands),
        concurrency: values.concurrency.split(",").map(Number),
        queries: Number(values.queries),
        unhealthyEvery: 20,
        reportIntervalSec: 15,
        ...profileDir,
      }),
  },
  real: {
    options: ["real-agents", "real-restarts"],
    run: () =>
      runRealAgentsBench({
        machines: Number(values["real-agents"]),
        restarts: Number(values["real-restarts"]),
      }),
  },
  terminal: {
    options: ["keystrokes"],
    run: () => runTerminalBench({ keystrokes: Number(values.keystrokes) }),
  },
  operations: {
    options: ["ops-agents", "ops-concurrency", "ops-delay-ms", "ops-starts", "ops-warm"],
    run: () =>
      runOperationsBench({
        agents: Number(values["ops-agents"]),
        concurrency: Number(values["ops-concurrency"]),
        delayMs: Number(values["ops-delay-ms"]),
        starts: Number(values["ops-starts"]),
        warm: Number(values["ops-warm"]),
        ...profileDir,
      }),
  },
  azure: {
    options: ["azure-vms", "azure-429", "azure-retry-after-ms", "azure-rounds"],
    run: () =>
      runAzureBench({
        vms: Number(values["azure-vms"]),
        throttleRate: Number(values["azure-429"]),
        retryAfterMs: Number(values["azure-retry-after-ms"]),
        rounds: Number(values["azure-rounds"]),
      }),
  },
  replicas: {
    options: [
      "rep-agents",
      "rep-per-fleet",
      "rep-steady",
      "rep-restarts",
      "rep-queries",
      "rep-bulk-rounds",
      "ops-concurrency",
      "ops-delay-ms",
      "rep-single",
      "rep-single-bulk-starts",
      "rep-single-bulk-warm",
      "rep-pg-statements",
      "rep-pg-via",
      "cpu-prof",
      "agents",
      "steady",
      "commands",
      "concurrency",
      "queries",
    ],
    run: () =>
      runReplicasBench({
        agents: Number(values["rep-agents"]),
        replicas: 3,
        agentsPerFleet: Number(values["rep-per-fleet"]),
        steadySec: Number(values["rep-steady"]),
        reportIntervalSec: 15,
        unhealthyEvery: 20,
        restarts: Number(values["rep-restarts"]),
        queries: Number(values["rep-queries"]),
        bulkConcurrency: Number(values["ops-concurrency"]),
        bulkDelayMs: Number(values["ops-delay-ms"]),
        bulkRounds: Number(values["rep-bulk-rounds"]),
        ...profileDir,
        pgStatements: values["rep-pg-statements"] === "1",
        pgVia: pgVia(values["rep-pg-via"]),
        single:
          values["rep-single"] === "0"
            ? null
            : {
                agents: Number(values.agents),
                steadySec: Number(values.steady),
                commands: Number(values.commands),
                concurrency: values.concurrency.split(",").map(Number),
                queries: Number(values.queries),
                bulk: {
                  agents: Number(values.agents),
                  concurrency: Number(values["ops-concurrency"]),
                  delayMs: Number(values["ops-delay-ms"]),
                  starts: Number(values["rep-single-bulk-starts"]),
                  warm: Number(values["rep-single-bulk-warm"]),
                },
              },
      }),
  },
  console: {
    options: [
      "console-agents",
      "console-loads",
      "console-changes",
      "console-heap-min",
      "console-changes-per-sec",
    ],
    run: () =>
      runConsoleBench({
        agents: Number(values["console-agents"]),
        unhealthyEvery: 20,
        reportIntervalSec: 15,
        loads: Number(values["console-loads"]),
        changes: Number(values["console-changes"]),
        heapMinutes: Number(values["console-heap-min"]),
        changesPerSec: Number(values["console-changes-per-sec"]),
      }),
  },
  upgrade: {
    options: ["upg-rounds", "upg-agents", "upg-concurrency", "upg-restart-ms", "upg-fleet-rounds"],
    run: () =>
      runUpgradeBench({
        rounds: Number(values["upg-rounds"]),
        agents: Number(values["upg-agents"]),
        concurrency: Number(values["upg-concurrency"]),
        restartMs: Number(values["upg-restart-ms"]),
        fleetRounds: Number(values["upg-fleet-rounds"]),
      }),
  },
  acme: {
    options: ["acme-vms"],
    run: () => runAcmeBench({ vms: Number(values["acme-vms"]) }),
  },
};

function pgVia(value: string): "tcp" | "socket" {
  if (value !== "tcp" && value !== "socket")
    throw new Error(`--rep-pg-via takes tcp or socket; not ${value}`);
  return value;
}

async function main(): Promise<void> {
  const only = values.only?.split(",").map((s) => s.trim()) ?? [...PARTS];
  const unknown = only.filter((name) => !isPart(name));
  if (unknown.length > 0) throw new Error(`--only takes ${PARTS.join(", ")}; not ${unknown.join(", ")}`);
  const selected = PARTS.filter((name) => only.includes(name));
  const latestJson = path.join(values.results, "latest.json");
  const kept = carriedOver(
    await readResults(latestJson),
    latestJson,
    PARTS.filter((name) => !selected.includes(name)),
  );
  await checkReadme(values.readme);

  // Controllers started as processes (startControllerProcess) run the checkout's bundled CLI:
  // built here, so a bundle left by an earlier test run never stands in for today's sources.
  await buildCliBundle();
  const machine = describeMachine();
  const at = new Date().toISOString();
  const measured: Partial<Parts> = {};
  for (const name of selected) {
    console.error(`bench: ${name}…`);
    Object.assign(measured, { [name]: await measure(name, machine) });
  }
  const results: Results = { machine, at, parts: { ...kept, ...measured } as Parts };
  const table = renderTable(results);
  console.log(table);
  await mkdir(values.results, { recursive: true });
  await writeFile(latestJson, `${JSON.stringify(results, null, 2)}\n`);
  await writeFile(path.join(values.results, "latest.md"), `${table}\n`);
  await writeTableInto(values.readme, table);
  console.error(`bench: wrote ${latestJson}, latest.md and the table in ${values.readme}`);
}

async function measure<K extends PartName>(name: K, machine: string): Promise<Measured<PartFigures[K]>> {
  const startedAt = new Date().toISOString();
  const run = RUNS[name];
  try {
    const figures = await run.run();
    return {
      version: PART_VERSIONS[name],
      machine,
      startedAt,
      finishedAt: new Date().toISOString(),
      options: run.options.map((o) => `--${o} ${values[o as keyof typeof values]}`).join(" "),
      figures,
    };
  } catch (error) {
    throw new Error(
      `bench: the ${name} part failed, nothing was written: ${(error as Error).stack ?? error}`,
    );
  }
}

// Stopped by a signal, the bench still takes down what it started: exiting closes its child
// controllers' stdin and its simulated fleets' IPC channel (each then stops), stops its
// PostgreSQL servers (postgres.ts) and removes its data directories.
for (const [signal, code] of [
  ["SIGINT", 130],
  ["SIGTERM", 143],
] as const) {
  process.once(signal, () => {
    console.error(`bench: ${signal}: stopping the processes it started; nothing was written`);
    process.exit(code);
  });
}
process.once("exit", () => removeMadeDataDirs());

main().then(
  () => process.exit(0),
  (error: Error) => {
    console.error(error.message);
    process.exit(1);
  },
);
