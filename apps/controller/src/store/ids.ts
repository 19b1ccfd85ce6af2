/**
 * Ids that sort by creation time (so event streams can resume "after id X" on any dialect):
 * `<prefix>_<ms since epoch, base36, 9 chars><per-ms sequence, 3 chars><random, 10 chars>`.
 */
import { randomBytes } from "node:crypto";

let lastMs = 0;
let seq = 0;

export function newId(prefix: string): string {
  const now = Date.now();
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
  const random = randomBytes(8).toString("base64url").replace(/[-_]/g, "0").slice(0, 10).toLowerCase();
  return `${prefix}_${lastMs.toString(36).padStart(9, "0")}${seq.toString(36).padStart(3, "0")}${random}`;
}
