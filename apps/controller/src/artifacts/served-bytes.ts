/**
 * The bytes of the artifacts this replica is serving, kept in memory: a fleet upgrade downloads
 * one version thousands of times, and one buffered write per download costs the event loop far
 * less than a file stream's reads and writes. Bounded by `maxBytes` (the least recently served
 * version goes first); a version larger than that is streamed from its file instead.
 */
import { readFile } from "node:fs/promises";

export class ServedBytes {
  private readonly cache = new Map<string, Buffer>();
  private total = 0;

  constructor(private readonly maxBytes = 128 * 1024 * 1024) {}

  /** The bytes of `file` (whose content hashes to `sha256`), or null when they would not fit. */
  async get(sha256: string, bytes: number, file: string): Promise<Buffer | null> {
    const hit = this.cache.get(sha256);
    if (hit) {
      // Most recently served last.
      this.cache.delete(sha256);
      this.cache.set(sha256, hit);
      return hit;
    }
    if (bytes > this.maxBytes) return null;
    const content = await readFile(file);
    if (content.length !== bytes) return null;
    for (const [key, value] of this.cache) {
      if (this.total + content.length <= this.maxBytes) break;
      this.cache.delete(key);
      this.total -= value.length;
    }
    this.cache.set(sha256, content);
    this.total += content.length;
    return content;
  }
}
