/** The record that lets a new agent re-adopt a notebook server the previous agent started. */
import { readFile } from "node:fs/promises";

export interface PidRecord {
  pid: number;
  startTime: number;
  port: number;
  startedAt: string;
}

export async function readPidRecord(file: string): Promise<PidRecord | null> {
  try {
    const value = JSON.parse(await readFile(file, "utf8")) as Partial<PidRecord>;
    if (
      typeof value.pid !== "number" ||
      typeof value.startTime !== "number" ||
      typeof value.port !== "number"
    ) {
      return null;
    }
    return {
      pid: value.pid,
      startTime: value.startTime,
      port: value.port,
      startedAt: String(value.startedAt),
    };
  } catch {
    return null;
  }
}

/** The file's content (written through a LatestFile, which retries what a full disk refused). */
export function formatPidRecord(record: PidRecord): string {
  return `${JSON.stringify(record)}\n`;
}
