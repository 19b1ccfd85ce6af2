#!/usr/bin/env node
/**
 * `nbfleet`: the controller (`up`, `server`) and its client (`vm`, `notebook`, `events`, `token`,
 * `op`, `policy`, `shell`, `exec`, `logs`, `replicas`, `agent`).
 * Exit codes: 0 ok, 1 failure, 2 bad usage or input, 3 not found, 4 timed out waiting.
 */
import { AGENT_VERSION } from "@nbfleet/shared";
import { Command, CommanderError } from "commander";
import { CliError, ExitCode } from "./client.js";
import { commandVersionFlag } from "./command-version-flag.js";
import { registerAgent } from "./commands/agent.js";
import { registerEvents } from "./commands/events.js";
import { registerFleet } from "./commands/fleet.js";
import { registerLogs } from "./commands/logs.js";
import { registerNotebook } from "./commands/notebook.js";
import { registerOp } from "./commands/op.js";
import { registerPolicy } from "./commands/policy.js";
import { registerReplicas } from "./commands/replicas.js";
import { registerServer } from "./commands/server.js";
import { registerShell } from "./commands/shell.js";
import { registerToken } from "./commands/token.js";
import { registerVm } from "./commands/vm.js";
import type { GlobalOptions } from "./context.js";

const program = new Command("nbfleet")
  .description("Runs fleets of Jupyter notebook servers on virtual machines.")
  .version(AGENT_VERSION)
  .option("--url <url>", "controller URL (default $NBFLEET_URL or http://$NBFLEET_LISTEN)")
  .option("--token <token>", "API token (default $NBFLEET_TOKEN, or the admin token in the data dir)")
  .option("--json", "machine-readable output")
  .showHelpAfterError()
  .exitOverride();

const globals = (): GlobalOptions => program.opts<GlobalOptions>();
registerServer(program, globals);
registerVm(program, globals);
registerNotebook(program, globals);
registerEvents(program, globals);
registerToken(program, globals);
registerOp(program, globals);
registerPolicy(program, globals);
registerShell(program, globals);
registerLogs(program, globals);
registerReplicas(program, globals);
registerFleet(program, globals);
registerAgent(program, globals);

try {
  await program.parseAsync(commandVersionFlag(process.argv));
} catch (error) {
  process.exitCode = exitCodeFor(error);
}

function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) {
    return error.code === "commander.helpDisplayed" || error.code === "commander.version"
      ? 0
      : ExitCode.usage;
  }
  if (error instanceof CliError) {
    report(error.code, error.message);
    return error.exitCode;
  }
  const code = (error as { code?: string }).code;
  report(
    typeof code === "string" && code.startsWith("NBF_") ? code : "NBF_INTERNAL",
    (error as Error).message ?? String(error),
  );
  return ExitCode.failure;
}

function report(code: string, message: string): void {
  if (program.opts<GlobalOptions>().json) console.error(JSON.stringify({ error: { code, message } }));
  else console.error(`nbfleet: ${message} [${code}]`);
}
