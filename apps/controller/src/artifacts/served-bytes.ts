/**
 * The bytes of the artifacts this replica is serving, kept in memory: a fleet upgrade downloads
 * one version thousands of times, and one buffered write per download costs the event loop far
 * less than a file stream's reads and writes. What is served is still what the file holds: a file
 * changed since it was read (its mtime or size) is read again. Bounded by `maxBytes` (the least
 * recently served version goes first); a version larger than that is streamed from its file.
 */
import { readFile, stat } from "node:fs/promises";

export class ServedBytes {
  private readonly cache = new Map<string, { content: Buffer; mtimeMs: number }>();
  private total = 0;

  constructor(private readonly maxBytes = 128 * 1024 * 1024) {}

  /** The bytes of `file` (whose content hashes to `sha256`), or null when they would not fit. */
  async get(sha256: string, bytes: number, file: string): Promise<Buffer | null> {
    const { mtimeMs, size } = await stat(file);
    const hit = this.cache.get(sha256);
    this.drop(sha256);
    if (hit && hit.mtimeMs === mtimeMs && hit.content.length === size) {
      // Most recently served last.
      this.keep(sha256, hit);
      return hit.content;
    }
    if (bytes > this.maxBytes || size !== bytes) return null;
    const content = await readFile(file);
    if (content.length !== bytes) return null;
    for (const key of [...this.cache.keys()]) {
      if (this.total + content.length <= this.maxBytes) break;
      this.drop(key);
    }
    this.keep(sha256, { content, mtimeMs });
    return content;
  }

  private keep(sha256: string, entry: { content: Buffer; mtimeMs: number }): void {
    this.cache.set(sha256, entry);
    this.total += entry.content.length;
  }

  private drop(sha256: string): void {
    const entry = this.cache.get(sha256);
    if (!entry) return;
    this.cache.delete(sha256);
    this.total -= entry.content.length;
  }
}
