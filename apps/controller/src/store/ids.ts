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

let lastMs = 0;
let seq = 0;

/** `now`: the time the id sorts by (event ids take the cluster's clock; see cluster-clock.ts). */
export function newId(prefix: string, now = Date.now()): string {
  if (now > lastMs) {
    lastMs = now;
    seq = 0;
  } else {
    seq++;
    if (seq >= 36 ** 3) {
      lastMs++;
      seq = 0;
    }
  }
  let random = "";
  for (let i = 0; i < 10; i++) random += ALPHABET[nextRandomByte() % 36];
  return `${prefix}_${lastMs.toString(36).padStart(9, "0")}${seq.toString(36).padStart(3, "0")}${random}`;
}

/** The smallest string above every event id made before `ms` (and below every later one). */
export function eventIdBound(ms: number): string {
  return `evt_${Math.max(0, Math.floor(ms)).toString(36).padStart(9, "0")}`;
}
