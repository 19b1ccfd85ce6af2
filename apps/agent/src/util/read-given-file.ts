/**
 * Reads a file an operator named (a token, a hash, a CA): one error for every such file that
 * cannot be read, naming what it was meant to be.
 */
import { readFile } from "node:fs/promises";
import { AgentError } from "../errors.js";

/** `what` completes "cannot read the …", e.g. "bootstrap token file". */
export async function readGivenFile(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      `cannot read the ${what} ${file}: ${(error as Error).message}`,
      {
        file,
      },
    );
  }
}
