/**
 * Reads a capped log the way `tail -n N -F` would, for the controller's log stream: the last
 * lines first (reaching into `<file>.1` when the live part is short), then every line appended
 * after. It keeps following across what happens to the file here:
 * - a notebook restart: the new server opens the same file for append, its lines just follow;
 * - copytruncate capping: the file shrinks below the read position; the bytes written since the
 *   last read went into `<file>.1`, so they are read from there before starting over at 0;
 * - the file replaced (another inode) or missing for a while: read from the start once it is there.
 */
import type { Stats } from "node:fs";
import { type FileHandle, open, stat } from "node:fs/promises";
import { StringDecoder } from "node:string_decoder";
import { setTimeout as sleep } from "node:timers/promises";
import { LOG_BATCH_LINES, LOG_LINE_MAX_CHARS } from "@nbfleet/shared";

export interface FollowOptions {
  /** How many existing lines to send first (0: none). */
  lines: number;
  follow: boolean;
  /** Receives batches of at most LOG_BATCH_LINES lines; the first call may be empty. */
  onLines: (lines: string[]) => void;
  signal: AbortSignal;
  /** Applied to every line before it leaves (e.g. hides secrets). */
  transform?: (line: string) => string;
  pollMs?: number;
  /** A last line without its newline is sent after this long without more bytes. */
  partialAfterMs?: number;
}

const READ_CHUNK = 256 * 1024;

/** Resolves when everything asked for was sent (no follow) or the signal aborted. */
export async function followLog(file: string, options: FollowOptions): Promise<void> {
  const { signal } = options;
  const pollMs = options.pollMs ?? 200;
  const partialAfterMs = options.partialAfterMs ?? 1000;
  const emit = (lines: string[]) => {
    const ready = lines.map((line) => clip(options.transform ? options.transform(line) : line));
    for (let at = 0; at < ready.length; at += LOG_BATCH_LINES) {
      options.onLines(ready.slice(at, at + LOG_BATCH_LINES));
    }
  };

  const first = await statOrNull(file);
  let position = first?.size ?? 0;
  let inode = first?.ino ?? null;
  const initial = options.lines > 0 ? await tailUpTo(file, position, options.lines) : [];
  options.onLines([]);
  emit(initial);
  if (!options.follow) return;

  let decoder = new StringDecoder("utf8");
  let carry = "";
  let carrySince = 0;
  const take = (text: string) => {
    if (text === "") return;
    const parts = (carry + text).split("\n");
    carry = parts.pop() ?? "";
    carrySince = Date.now();
    emit(parts.map(stripCr));
  };
  const flushCarry = () => {
    const rest = carry + decoder.end();
    decoder = new StringDecoder("utf8");
    carry = "";
    if (rest !== "") emit([stripCr(rest)]);
  };

  while (!signal.aborted) {
    await sleep(pollMs, undefined, { signal }).catch(() => {}); // stopped: the loop ends
    if (signal.aborted) break;
    const now = await statOrNull(file);
    if (!now) continue;
    if (now.ino !== inode) {
      flushCarry();
      inode = now.ino;
      position = 0;
    } else if (now.size < position) {
      // Capped: what was written after our last read was copied into <file>.1 first.
      const rotated = await statOrNull(`${file}.1`);
      if (rotated && rotated.size > position) {
        take(decoder.write(await readRange(`${file}.1`, position, rotated.size)));
      }
      flushCarry();
      position = 0;
    }
    if (now.size > position) {
      let end = now.size;
      while (position < end && !signal.aborted) {
        const upTo = Math.min(end, position + READ_CHUNK);
        const bytes = await readRange(file, position, upTo);
        if (bytes.length === 0) {
          end = position; // truncated under us; the next round sees it
          break;
        }
        position += bytes.length;
        take(decoder.write(bytes));
      }
    } else if (carry !== "" && Date.now() - carrySince >= partialAfterMs) {
      flushCarry();
    }
  }
}

/** The last `lines` lines of the bytes [0, end) of `file`, preceded by `<file>.1` when short. */
export async function tailUpTo(file: string, end: number, lines: number): Promise<string[]> {
  const current = await readLastLines(file, end, lines);
  if (current.length >= lines) return current.slice(-lines);
  const rotated = await statOrNull(`${file}.1`);
  const previous = rotated ? await readLastLines(`${file}.1`, rotated.size, lines - current.length) : [];
  return [...previous, ...current].slice(-lines);
}

async function readLastLines(file: string, end: number, lines: number): Promise<string[]> {
  if (end <= 0 || lines <= 0) return [];
  let handle: FileHandle;
  try {
    handle = await open(file, "r");
  } catch {
    return [];
  }
  try {
    let position = end;
    const chunks: Buffer[] = [];
    let newlines = 0;
    while (position > 0 && newlines <= lines) {
      const length = Math.min(READ_CHUNK, position);
      position -= length;
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, position);
      const chunk = buffer.subarray(0, bytesRead);
      chunks.unshift(chunk);
      for (const byte of chunk) if (byte === 0x0a) newlines++;
    }
    const all = Buffer.concat(chunks).toString("utf8").split("\n").map(stripCr);
    if (all.at(-1) === "") all.pop();
    // Started mid-file: the first piece may be the end of an earlier line.
    if (position > 0) all.shift();
    return all.slice(-lines);
  } finally {
    await handle.close();
  }
}

async function readRange(file: string, start: number, end: number): Promise<Buffer> {
  let handle: FileHandle;
  try {
    handle = await open(file, "r");
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const buffer = Buffer.alloc(Math.max(0, end - start));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

function statOrNull(file: string): Promise<Stats | null> {
  return stat(file).catch(() => null);
}

function stripCr(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

function clip(line: string): string {
  return line.length <= LOG_LINE_MAX_CHARS ? line : `${line.slice(0, LOG_LINE_MAX_CHARS - 1)}…`;
}
