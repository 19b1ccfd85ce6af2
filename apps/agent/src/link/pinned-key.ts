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
import type { PinnedKeyRecord } from "../tls/pinned-connection.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { readTextIfPresent } from "../util/read-if-present.js";

const SHA256_COLON_HEX = /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/;
const MAX_RECORD_BYTES = 4096;

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
  let text: string | null;
  try {
    text = await readTextIfPresent(file);
  } catch (error) {
    return { key: null, problem: `${file} cannot be read: ${(error as Error).message}` };
  }
  if (text === null) return { key: null, problem: null };
  if (text.length > MAX_RECORD_BYTES) {
    return { key: null, problem: `${file} is larger than ${MAX_RECORD_BYTES} bytes` };
  }
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
    !SHA256_COLON_HEX.test(record.keySha256)
  ) {
    return { key: null, problem: `${file} does not hold a certificate's and a key's SHA-256` };
  }
  return { key: record.certificateSha256 === certificateSha256 ? record.keySha256 : null, problem: null };
}
