/**
 * `nbfleet-agent`'s command line (loaded by ./main.ts).
 * Exit codes: 0 ok, 1 error, 2 bad usage, 3 `status` found the notebook not healthy.
 */
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { AgentError } from "../errors.js";
import { agentVersion } from "../version.js";
import { registerCertificate } from "./commands/certificate.js";
import { registerCheck } from "./commands/check.js";
import { registerEvents } from "./commands/events.js";
import { registerInstall } from "./commands/install.js";
import { registerLogs } from "./commands/logs.js";
import { registerNotebook } from "./commands/notebook.js";
import { registerPassword } from "./commands/password.js";
import { registerStatus } from "./commands/status.js";
import { registerUp } from "./commands/up.js";

export async function main(argv: string[]): Promise<never> {
  const program = new Command("nbfleet-agent")
    .description("Installs Jupyter, owns the nbserver profile, supervises and checks the notebook server.")
    .version(agentVersion())
    .showHelpAfterError()
    .exitOverride();

  // Each subcommand either drives the running agent over its control socket or acts on DIR directly.
  registerUp(program);
  registerInstall(program);
  registerStatus(program);
  registerNotebook(program);
  registerCheck(program);
  registerPassword(program);
  registerCertificate(program);
  registerLogs(program);
  registerEvents(program);

  try {
    await program.parseAsync(argv);
  } catch (error) {
    process.exitCode = exitCodeFor(error);
  }
  // A finished command leaves nothing worth waiting for (a paused stdin would keep the process up).
  process.exit();
}

function exitCodeFor(error: unknown): number {
  if (error instanceof CommanderError) {
    if (error.code === "commander.helpDisplayed" || error.code === "commander.version") return 0;
    return 2;
  }
  if (error instanceof InvalidArgumentError) return 2;
  const code = error instanceof AgentError ? error.code : "NBF_INTERNAL";
  const message = error instanceof Error ? error.message : String(error);
  console.error(`nbfleet-agent: ${message} [${code}]`);
  return code === "NBF_INVALID_INPUT" ? 2 : 1;
}
