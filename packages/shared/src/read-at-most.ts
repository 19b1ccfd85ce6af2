/** Bounded reads of files an operator or a state directory holds: never more than the limit is read. */
import { open } from "node:fs/promises";

export const TOO_LARGE = Symbol("too large");

/** The file's text if it holds at most `limit` bytes (never more is read); null when it is absent. */
export async function readAtMost(file: string, limit: number): Promise<string | typeof TOO_LARGE | null> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  try {
    const buffer = Buffer.alloc(limit + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return bytesRead > limit ? TOO_LARGE : buffer.toString("utf8", 0, bytesRead);
  } finally {
    await handle.close();
  }
}
