/** `nbfleet-agent password`: a new notebook password, hashed here for the installed server. */
import type { AgentState } from "@nbfleet/shared";
import type { Command } from "commander";
import { dataPaths } from "../../config/paths.js";
import { fetchState } from "../../control/client.js";
import { AgentError } from "../../errors.js";
import { hashForServer, validateHash } from "../../password/hash.js";
import { readPassword } from "../../password/stdin.js";
import { type DataDirOption, runCommand, withDataDir } from "../context.js";

export function registerPassword(program: Command): void {
  withDataDir(program.command("password"))
    .description(
      "set the notebook password (from stdin, hashed at once, or a ready hash) and restart the server",
    )
    .option("--stdin", "read the password from the first line of stdin")
    .option("--hash <hash>", "a ready Jupyter hash (argon2:… or sha1:…)")
    .option("--json", "print JSON")
    .action(async (opts: DataDirOption & { stdin?: boolean; hash?: string }) => {
      if (Boolean(opts.stdin) === Boolean(opts.hash)) {
        throw new AgentError("NBF_INVALID_INPUT", "give exactly one of --stdin or --hash");
      }
      const paths = dataPaths(opts.dataDir);
      const state = await fetchState(paths.controlSocket);
      if (opts.hash) validateHash(opts.hash);
      const hash = opts.hash ?? (await hashForGeneration(await readPassword(process.stdin), state));
      await runCommand(opts, "password.set", { hash });
    });
}

function hashForGeneration(plain: string, state: AgentState): Promise<string> {
  return hashForServer(plain, {
    generation: state.notebook.generation ?? "notebook6",
    version: state.notebook.version ?? "6.4.12",
  });
}
