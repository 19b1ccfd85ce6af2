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

export type SmallJson = { found: true; value: unknown } | { found: false; problem: string | null };

/** A small JSON state file's value; not found when absent (no problem) or unusable (the problem named). */
export async function readSmallJson(file: string, limit: number): Promise<SmallJson> {
  let text: string | typeof TOO_LARGE | null;
  try {
    text = await readAtMost(file, limit);
  } catch (error) {
    return { found: false, problem: `${file} cannot be read: ${(error as Error).message}` };
  }
  if (text === null) return { found: false, problem: null };
  if (text === TOO_LARGE) return { found: false, problem: `${file} is larger than ${limit} bytes` };
  try {
    return { found: true, value: JSON.parse(text) };
  } catch (error) {
    return { found: false, problem: `${file} is not valid JSON: ${(error as Error).message}` };
  }
}
