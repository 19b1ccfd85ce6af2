/**
 * What `pnpm bench` keeps in `latest.json`: each part's figures with when and on what they were
 * taken. A part not run this time is carried over from the previous file with its own dates —
 * or, when that file lacks it (or holds it in an older shape), the run refuses to start.
 */
import { readFile } from "node:fs/promises";
import type { AcmeBenchResult } from "./acme-bench.js";
import type { AgentBenchResult } from "./agent-bench.js";
import type { AzureBenchResult } from "./azure-bench.js";
import type { ConsoleBenchResult } from "./console-bench.js";
import type { ControllerBenchResult } from "./controller-bench.js";
import type { OperationsBenchResult } from "./operations-bench.js";
import type { RealAgentsBenchResult } from "./real-agents-bench.js";
import type { ReplicasBenchResult } from "./replicas-bench.js";
import type { TerminalBenchResult } from "./terminal-bench.js";
import type { UpgradeBenchResult } from "./upgrade-bench.js";

/** In table order. */
export const PARTS = [
  "agent",
  "controller",
  "real",
  "terminal",
  "operations",
  "azure",
  "replicas",
  "console",
  "upgrade",
  "acme",
] as const;
export type PartName = (typeof PARTS)[number];

export interface PartFigures {
  agent: AgentBenchResult;
  controller: ControllerBenchResult;
  real: RealAgentsBenchResult;
  terminal: TerminalBenchResult;
  operations: OperationsBenchResult;
  azure: AzureBenchResult;
  replicas: ReplicasBenchResult;
  console: ConsoleBenchResult;
  upgrade: UpgradeBenchResult;
  acme: AcmeBenchResult;
}

/** Bumped when a part's figures change shape or meaning: older ones are then never carried over. */
export const PART_VERSIONS: Record<PartName, number> = {
  agent: 2,
  controller: 2,
  real: 1,
  terminal: 1,
  operations: 2,
  azure: 2,
  replicas: 1,
  console: 1,
  upgrade: 1,
  acme: 1,
};

export interface Measured<T> {
  version: number;
  machine: string;
  /** ISO times. */
  startedAt: string;
  finishedAt: string;
  /** The command line's options for this run. */
  options: string;
  figures: T;
}

export type Parts = { [K in PartName]: Measured<PartFigures[K]> };

export interface Results {
  machine: string;
  /** When this run started: parts that started earlier were carried over. */
  at: string;
  parts: Parts;
}

export function isPart(name: string): name is PartName {
  return (PARTS as readonly string[]).includes(name);
}

export async function readResults(file: string): Promise<Partial<Results>> {
  const text = await readFile(file, "utf8").catch(() => null);
  return text === null ? {} : (JSON.parse(text) as Partial<Results>);
}

/**
 * The previous figures of every part that will not run now. Throws, naming them, when any is
 * missing or from an older bench: figures are never silently kept or dropped.
 */
export function carriedOver(previous: Partial<Results>, file: string, notRun: PartName[]): Partial<Parts> {
  const kept: Partial<Parts> = {};
  const missing: string[] = [];
  for (const name of notRun) {
    const part = previous.parts?.[name];
    if (!part) missing.push(`${name} (not in the file)`);
    else if (part.version !== PART_VERSIONS[name])
      missing.push(`${name} (measured by an older bench, version ${part.version ?? "?"})`);
    else Object.assign(kept, { [name]: part });
  }
  if (missing.length > 0)
    throw new Error(
      `bench: the parts not run this time are carried over from ${file}, which has no usable figures for: ${missing.join(", ")}. Add them to --only, or run every part.`,
    );
  return kept;
}
