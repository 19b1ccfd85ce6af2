import { TOO_LARGE, readAtMost } from "@nbfleet/shared/read-at-most";

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
