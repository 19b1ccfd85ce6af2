/**
 * How a replica proves to another that a relayed request comes from a replica of the same
 * cluster, and for which operator token. The request carries
 *
 *   Authorization: NbfleetReplica target=<replica id>, token=<token id>, ts=<ms>, nonce=<hex>, mac=<hex>
 *
 * where mac = HMAC-SHA256(replica secret, method, URL, target, token, ts, nonce). The secret itself
 * never travels, so a request seen on the wire proves nothing for any other URL, replica or
 * token, and its nonce is refused a second time within the freshness window. Checking costs one
 * HMAC and no database access, as cheap as refusing a request without a token; the MAC is
 * compared in constant time.
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export const RELAY_SCHEME = "NbfleetReplica";
/** How far a relayed request's clock may be from ours (and how long its nonce is remembered). */
const FRESH_MS = 60_000;
const TOKEN_ID = /^[A-Za-z0-9_-]{1,64}$/;
const HEADER = new RegExp(
  `^${RELAY_SCHEME} target=([A-Za-z0-9_-]{1,64}), token=([A-Za-z0-9_-]{1,64}), ts=(\\d{1,16}), nonce=([0-9a-f]{32}), mac=([0-9a-f]{64})$`,
);

export interface RelayClaim {
  method: string;
  /** Path and query exactly as sent. */
  url: string;
  target: string;
  tokenId: string;
}

export function relayAuthorization(secret: Buffer, claim: RelayClaim, now = Date.now()): string {
  if (!TOKEN_ID.test(claim.tokenId) || !TOKEN_ID.test(claim.target)) {
    throw new Error(`cannot relay for token id '${claim.tokenId}' to replica '${claim.target}'`);
  }
  const nonce = randomBytes(16).toString("hex");
  const mac = sign(secret, claim, String(now), nonce).toString("hex");
  return `${RELAY_SCHEME} target=${claim.target}, token=${claim.tokenId}, ts=${now}, nonce=${nonce}, mac=${mac}`;
}

export type RelayVerdict = { ok: true; tokenId: string } | { ok: false; why: "missing" | "invalid" };

export class RelayVerifier {
  /** Nonces seen within the window, oldest first (a Map keeps insertion order). */
  private readonly seen = new Map<string, number>();

  constructor(
    private readonly secret: Buffer,
    private readonly selfId: () => string,
    private readonly now: () => number = Date.now,
  ) {}

  verify(method: string, url: string, header: string | string[] | undefined): RelayVerdict {
    const value = Array.isArray(header) ? header[0] : header;
    if (!value?.startsWith(`${RELAY_SCHEME} `)) return { ok: false, why: "missing" };
    const match = HEADER.exec(value);
    if (!match) return { ok: false, why: "invalid" };
    const [, target, tokenId, ts, nonce, mac] = match as unknown as [
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    const expected = sign(this.secret, { method, url, target, tokenId }, ts, nonce);
    const macOk = timingSafeEqual(expected, Buffer.from(mac, "hex"));
    const now = this.now();
    const fresh = Math.abs(now - Number(ts)) <= FRESH_MS;
    this.forgetOld(now);
    if (!macOk || !fresh || target !== this.selfId() || this.seen.has(nonce))
      return { ok: false, why: "invalid" };
    // A timestamp may be up to FRESH_MS ahead, so it stays acceptable until now + 2 × FRESH_MS.
    this.seen.set(nonce, now + 2 * FRESH_MS);
    return { ok: true, tokenId };
  }

  private forgetOld(now: number): void {
    for (const [nonce, expires] of this.seen) {
      if (expires > now) break;
      this.seen.delete(nonce);
    }
  }
}

function sign(secret: Buffer, claim: RelayClaim, ts: string, nonce: string): Buffer {
  return createHmac("sha256", secret)
    .update(
      [
        "nbfleet-relay-v1",
        claim.method.toUpperCase(),
        claim.url,
        claim.target,
        claim.tokenId,
        ts,
        nonce,
      ].join("\n"),
    )
    .digest();
}
