/** The record that lets a new agent re-adopt a notebook server the previous agent started. */
import { readFile, rm } from "node:fs/promises";
import { writeFileAtomic } from "../util/atomic-write.js";

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

export function writePidRecord(file: string, record: PidRecord): Promise<void> {
  return writeFileAtomic(file, `${JSON.stringify(record)}\n`, { mode: 0o600 });
}

export function removePidRecord(file: string): Promise<void> {
  return rm(file, { force: true });
}
