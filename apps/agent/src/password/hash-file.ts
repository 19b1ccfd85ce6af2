/**
 * Reads a password hash handed over in a file (`up --password-hash-file`): what launchers use,
 * so a hash never sits on a command line where any local user's `ps` shows it.
 */
import { AgentError } from "../errors.js";
import { readGivenFile } from "../util/read-given-file.js";
import { validateHash } from "./hash.js";

const MAX_FILE_BYTES = 4096;

export async function readHashFile(file: string): Promise<string> {
  const text = await readGivenFile(file, "password hash file");
  if (Buffer.byteLength(text) > MAX_FILE_BYTES) {
    throw new AgentError(
      "NBF_PASSWORD_INVALID",
      `the password hash file ${file} is larger than ${MAX_FILE_BYTES} bytes; it must hold one hash`,
      { file },
    );
  }
  const hash = text.trim();
  validateHash(hash);
  return hash;
}
