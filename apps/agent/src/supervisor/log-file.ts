/**
 * The notebook writes straight into its log file (it must outlive the agent, so no pipe to the
 * agent). The agent caps the size copytruncate-style: the file is opened O_APPEND by the
 * server, so after a truncate its next write lands at the new end.
 */
import { type FileHandle, copyFile, open, stat, truncate } from "node:fs/promises";
import { tailUpTo } from "./log-follow.js";

export async function openAppend(
  file: string,
  owner?: { uid: number; gid: number } | null,
): Promise<FileHandle> {
  const handle = await open(file, "a", 0o640);
  if (owner) await handle.chown(owner.uid, owner.gid);
  return handle;
}

/**
 * Keeps at most ~maxBytes in the live file, the previous part in `<file>.1`. The cap holds even
 * when the copy fails (a full disk, where a growing log must not keep the disk full): the live
 * file is truncated anyway and the error, saying the previous part was lost, is thrown after.
 */
export async function capLogFile(file: string, maxBytes: number): Promise<boolean> {
  const size = await stat(file).then(
    (s) => s.size,
    () => 0,
  );
  if (size <= maxBytes) return false;
  let copyError: unknown = null;
  await copyFile(file, `${file}.1`).catch((error: unknown) => {
    copyError = error;
  });
  await truncate(file, 0);
  if (copyError !== null) {
    const reason = copyError instanceof Error ? copyError.message : String(copyError);
    throw Object.assign(new Error(`capped ${file} but could not keep its previous part: ${reason}`), {
      code: (copyError as { code?: unknown }).code,
      cause: copyError,
    });
  }
  return true;
}

/** The last `lines` lines of the log, reaching into the previous part when needed. */
export async function tailLines(file: string, lines: number): Promise<string[]> {
  const size = await stat(file).then(
    (s) => s.size,
    () => 0,
  );
  return tailUpTo(file, size, lines);
}
