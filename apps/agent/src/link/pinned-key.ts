/**
 * The key of the controller certificate the link is pinned to (see certificate-pin in
 * @nbfleet/shared). The first handshake that shows exactly the pinned certificate records the
 * SHA-256 of its key in DIR/state/controller-key.json, beside the fingerprint it belongs to;
 * from then on a certificate renewed with that key passes too, for the link and for agent
 * downloads. A record made for another fingerprint (the agent was pinned again) is ignored, and
 * one that cannot be read is ignored with a warning; either is replaced at the next handshake
 * with the pinned certificate. It lives outside agent.json so that an older agent (an upgrade
 * rolled back) still reads its settings.
 */
import { open } from "node:fs/promises";
import { SHA256_COLON_HEX } from "@nbfleet/shared/certificate-pin";
import type { PinnedKeyRecord } from "../tls/pinned-connection.js";
import { writeFileAtomic } from "../util/atomic-write.js";

const SHA256 = new RegExp(SHA256_COLON_HEX);
const MAX_RECORD_BYTES = 4096;
const TOO_LARGE = Symbol("too large");

export interface PinnedKeyLoad {
  pinnedKey: PinnedKey;
  /** Why a record on disk was not used (it is rewritten at the next matching handshake). */
  problem: string | null;
}

export class PinnedKey implements PinnedKeyRecord {
  private constructor(
    private readonly file: string,
    private readonly certificateSha256: string,
    private key: string | null,
    private readonly onWriteError: (error: unknown) => void,
  ) {}

  /** The record for `certificateSha256` in `file`, if there is a readable one. */
  static async load(
    file: string,
    certificateSha256: string,
    onWriteError: (error: unknown) => void,
  ): Promise<PinnedKeyLoad> {
    const { key, problem } = await readRecord(file, certificateSha256);
    return { pinnedKey: new PinnedKey(file, certificateSha256, key, onWriteError), problem };
  }

  get keySha256(): string | null {
    return this.key;
  }

  learned(keySha256: string): void {
    if (keySha256 === this.key) return;
    this.key = keySha256;
    const record = { certificateSha256: this.certificateSha256, keySha256 };
    writeFileAtomic(this.file, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 }).catch(
      this.onWriteError,
    );
  }
}

async function readRecord(
  file: string,
  certificateSha256: string,
): Promise<{ key: string | null; problem: string | null }> {
  let text: string | typeof TOO_LARGE | null;
  try {
    text = await readAtMost(file, MAX_RECORD_BYTES);
  } catch (error) {
    return { key: null, problem: `${file} cannot be read: ${(error as Error).message}` };
  }
  if (text === null) return { key: null, problem: null };
  if (text === TOO_LARGE) return { key: null, problem: `${file} is larger than ${MAX_RECORD_BYTES} bytes` };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { key: null, problem: `${file} is not valid JSON: ${(error as Error).message}` };
  }
  const record = value as { certificateSha256?: unknown; keySha256?: unknown } | null;
  if (
    typeof record !== "object" ||
    record === null ||
    typeof record.certificateSha256 !== "string" ||
    typeof record.keySha256 !== "string" ||
    !SHA256.test(record.keySha256)
  ) {
    return { key: null, problem: `${file} does not hold a certificate's and a key's SHA-256` };
  }
  return { key: record.certificateSha256 === certificateSha256 ? record.keySha256 : null, problem: null };
}

/** The file's text if it holds at most `limit` bytes (never more is read); null when it is absent. */
async function readAtMost(file: string, limit: number): Promise<string | typeof TOO_LARGE | null> {
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(file, "r");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw error;
  }
  try {
    const buffer = Buffer.alloc(limit + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return bytesRead > limit ? TOO_LARGE : buffer.toString("utf8", 0, bytesRead);
  } finally {
    await handle.close();
  }
}
