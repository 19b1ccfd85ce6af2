/**
 * The agent's controller credential on disk: one line, mode 0600, written atomically so a crash
 * never leaves half a secret.
 */
import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";
import { AgentError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic-write.js";

/** The stored credential, or null when there is none yet. */
export async function readCredential(file: string): Promise<string | null> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw new AgentError(
      "NBF_INVALID_INPUT",
      `cannot read the controller credential at ${file}: ${(error as Error).message}`,
      { file },
    );
  }
  const credential = text.trim();
  if (credential.length === 0) return null;
  if (/\s/.test(credential)) {
    throw new AgentError("NBF_INVALID_INPUT", `the controller credential at ${file} is not one token`, {
      file,
    });
  }
  return credential;
}

export async function storeCredential(file: string, credential: string): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, `${credential}\n`, { mode: 0o600 });
}
