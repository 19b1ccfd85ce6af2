/** A file's or a buffer's length and SHA-256, to check an upload arrived whole and in order. */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";

export interface Digest {
  bytes: number;
  sha256: string;
}

export function digestOf(data: Buffer): Digest {
  return { bytes: data.length, sha256: createHash("sha256").update(data).digest("hex") };
}

export async function digestOfFile(file: string): Promise<Digest> {
  return digestOf(await readFile(file));
}
