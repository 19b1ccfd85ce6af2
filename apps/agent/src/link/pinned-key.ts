/**
 * The key of the controller certificate the link is pinned to (see certificate-pin in
 * @nbfleet/shared). The first handshake that shows exactly the pinned certificate records the
 * SHA-256 of its key in DIR/state/controller-key.json, beside the fingerprint it belongs to;
 * from then on a certificate renewed with that key passes too, for the link and for agent
 * downloads. A record made for another fingerprint (the agent was pinned again) is ignored, and
 * one that cannot be read is ignored with a warning; either is replaced at the next handshake
 * with the pinned certificate. It lives outside agent.json so that an older agent (an upgrade
 * rolled back) still reads its settings. Once a `controller.trust` stored a set of controller
 * certificates (trusted-controllers.ts), that set replaces the pin and its key.
 */
import type { X509Certificate } from "node:crypto";
import { SHA256_COLON_HEX } from "@nbfleet/shared/certificate-pin";
import type { PinnedKeyRecord } from "../tls/pinned-connection.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { readSmallJson } from "../util/small-json.js";
import { type TrustedPin, readTrustedSet, storeTrustedSet } from "./trusted-controllers.js";

const SHA256 = new RegExp(SHA256_COLON_HEX);
const MAX_RECORD_BYTES = 4096;

export interface PinnedKeyLoad {
  pinnedKey: PinnedKey;
  /** Why a record or trusted set on disk was not used (a record is rewritten at the next matching handshake). */
  problem: string | null;
}

export class PinnedKey implements PinnedKeyRecord {
  private lastAccepted: X509Certificate | null = null;

  private constructor(
    private readonly file: string,
    private readonly trustFile: string | null,
    private readonly certificateSha256: string,
    private key: string | null,
    private trustedPins: TrustedPin[] | null,
    private readonly onWriteError: (error: unknown) => void,
  ) {}

  /**
   * The record for `certificateSha256` in `file`, if there is a readable one, and the set a
   * `controller.trust` stored in `trustFile` in place of that pin (without a trust file the
   * agent takes no controller.trust).
   */
  static async load(
    file: string,
    certificateSha256: string,
    onWriteError: (error: unknown) => void,
    trustFile?: string,
  ): Promise<PinnedKeyLoad> {
    const { key, problem } = await readRecord(file, certificateSha256);
    const trusted = trustFile
      ? await readTrustedSet(trustFile, certificateSha256)
      : { pins: null, problem: null };
    return {
      pinnedKey: new PinnedKey(file, trustFile ?? null, certificateSha256, key, trusted.pins, onWriteError),
      problem: [problem, trusted.problem].filter(Boolean).join("; ") || null,
    };
  }

  get keySha256(): string | null {
    return this.key;
  }

  get trusted(): readonly TrustedPin[] | null {
    return this.trustedPins;
  }

  learned(keySha256: string): void {
    if (keySha256 === this.key) return;
    this.key = keySha256;
    const record = { certificateSha256: this.certificateSha256, keySha256 };
    writeFileAtomic(this.file, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 }).catch(
      this.onWriteError,
    );
  }

  accepted(served: X509Certificate): void {
    this.lastAccepted = served;
  }

  /** controller.trust: from now on exactly `pins` (which must include the certificate last accepted). */
  async trust(pins: TrustedPin[]): Promise<void> {
    if (!this.trustFile) throw new Error("this pinned key was loaded without a trust file");
    await storeTrustedSet(this.trustFile, this.certificateSha256, pins, this.lastAccepted);
    this.trustedPins = pins;
  }
}

async function readRecord(
  file: string,
  certificateSha256: string,
): Promise<{ key: string | null; problem: string | null }> {
  const read = await readSmallJson(file, MAX_RECORD_BYTES);
  if (!read.found) return { key: null, problem: read.problem };
  const record = read.value as { certificateSha256?: unknown; keySha256?: unknown } | null;
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
