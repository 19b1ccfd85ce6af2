/**
 * The wire form of one signal between replicas: a NOTIFY payload `{"o":origin,"k":kind,"i":[ids]}`.
 * Payloads carry a kind and ids only (receivers re-read the rows), and each stays well below
 * PostgreSQL's 8000-byte payload limit: many ids are split over several payloads.
 */

/** PostgreSQL refuses payloads of 8000 bytes or more; this leaves room for anything we add. */
export const MAX_PAYLOAD_BYTES = 6000;

export interface SignalMessage {
  /** Who sent it (a replica's own echo is recognised by this). */
  origin: string;
  kind: string;
  ids: string[];
}

/**
 * The payloads for one kind's ids, in order, each at most `maxBytes` (UTF-8). A kind with no
 * ids is one payload with an empty list (a bare "look again").
 */
export function encodePayloads(
  origin: string,
  kind: string,
  ids: readonly string[],
  maxBytes = MAX_PAYLOAD_BYTES,
): string[] {
  const head = `{"o":${JSON.stringify(origin)},"k":${JSON.stringify(kind)},"i":[`;
  const tail = "]}";
  const base = Buffer.byteLength(head) + Buffer.byteLength(tail);
  if (base >= maxBytes)
    throw new Error(`signal origin and kind alone take ${base} bytes (limit ${maxBytes})`);
  const payloads: string[] = [];
  let parts: string[] = [];
  let size = base;
  for (const id of ids) {
    const part = JSON.stringify(id);
    const bytes = Buffer.byteLength(part);
    if (base + bytes > maxBytes) throw new Error(`signal id of ${bytes} bytes does not fit a payload: ${id}`);
    const added = bytes + (parts.length > 0 ? 1 : 0);
    if (size + added > maxBytes) {
      payloads.push(head + parts.join(",") + tail);
      parts = [];
      size = base;
    }
    size += bytes + (parts.length > 0 ? 1 : 0);
    parts.push(part);
  }
  if (parts.length > 0 || payloads.length === 0) payloads.push(head + parts.join(",") + tail);
  return payloads;
}

/** A payload back as a message; null for anything that is not one of ours (ignored, never thrown). */
export function decodePayload(payload: string | undefined): SignalMessage | null {
  if (!payload) return null;
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return null;
  }
  if (typeof value !== "object" || value === null) return null;
  const { o, k, i } = value as { o?: unknown; k?: unknown; i?: unknown };
  if (typeof o !== "string" || typeof k !== "string" || !Array.isArray(i)) return null;
  if (!i.every((id): id is string => typeof id === "string")) return null;
  return { origin: o, kind: k, ids: i };
}
