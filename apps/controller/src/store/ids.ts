/**
 * Ids that sort by creation time (so event streams can resume "after id X" on any dialect):
 * `<prefix>_<ms since epoch, base36, 9 chars><per-ms sequence, 3 chars><random, 10 chars>`.
 */
import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz";
// One random draw per 4 KiB of ids instead of one per id.
let pool = randomBytes(4096);
let poolAt = 0;
function nextRandomByte(): number {
  if (poolAt >= pool.length) {
    pool = randomBytes(4096);
    poolAt = 0;
  }
  return pool[poolAt++]!;
}

/**
 * The last time and sequence per prefix: event ids are made on the cluster's clock and the
 * others on this machine's, which may be far apart (cluster-clock.ts); one shared "last" would
 * push every event id to the faster clock.
 */
const lastByPrefix = new Map<string, { ms: number; seq: number }>();

/**
 * `now`: the time the id sorts by (event ids take the cluster's clock; see cluster-clock.ts).
 * Ids of one prefix never go backwards: a clock that does (a step) advances the sequence instead.
 */
export function newId(prefix: string, now = Date.now()): string {
  let last = lastByPrefix.get(prefix);
  if (!last) {
    last = { ms: 0, seq: 0 };
    lastByPrefix.set(prefix, last);
  }
  if (now > last.ms) {
    last.ms = now;
    last.seq = 0;
  } else {
    last.seq++;
    if (last.seq >= 36 ** 3) {
      last.ms++;
      last.seq = 0;
    }
  }
  let random = "";
  for (let i = 0; i < 10; i++) random += ALPHABET[nextRandomByte() % 36];
  return `${prefix}_${last.ms.toString(36).padStart(9, "0")}${last.seq.toString(36).padStart(3, "0")}${random}`;
}

/** The smallest string above every event id made before `ms` (and below every later one). */
export function eventIdBound(ms: number): string {
  return `evt_${Math.max(0, Math.floor(ms)).toString(36).padStart(9, "0")}`;
}
