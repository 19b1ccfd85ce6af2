/** What every subcommand shares: the `--data-dir` option, printing, and commands sent to the running agent. */
import type { AgentState, CommandName, CommandParamsOf } from "@nbfleet/shared";
import type { Command } from "commander";
import { dataPaths } from "../config/paths.js";
import { sendCommand } from "../control/client.js";
import { AgentError } from "../errors.js";
import { formatState } from "./format-state.js";

export interface DataDirOption {
  dataDir: string;
  json?: boolean;
}

export const withDataDir = (cmd: Command): Command =>
  cmd.requiredOption("--data-dir <dir>", "the agent's data directory (profile, state, logs)");

export const print = (json: boolean | undefined, value: unknown, human: () => string): void =>
  console.log(json ? JSON.stringify(value, null, 2) : human());

/** Sends one command over the control socket and prints its result (nothing when `quiet`). */
export async function runCommand<N extends CommandName>(
  opts: DataDirOption,
  name: N,
  params: CommandParamsOf<N>,
  quiet = false,
): Promise<void> {
  const paths = dataPaths(opts.dataDir);
  const outcome = await sendCommand(paths.controlSocket, name, params, (message) => {
    if (!opts.json && !quiet) console.error(`… ${message}`);
  });
  if (!outcome.ok) throw new AgentError(outcome.error.code as never, outcome.error.message);
  if (quiet) return;
  const data = outcome.data as AgentState | { lines: string[] } | undefined;
  print(opts.json, data ?? { ok: true }, () =>
    data && "health" in data ? formatState("running", data) : `${name}: done`,
  );
}
