/**
 * The served certificate's expiry as vm_status.cert_not_after keeps it: one ISO form with a
 * four-digit year, so text order is time order on both dialects.
 */
import { canonicalIsoMs } from "@nbfleet/shared";

const FIRST_MS = Date.parse("0000-01-01T00:00:00.000Z");
const LAST_MS = Date.parse("9999-12-31T23:59:59.999Z");

/** `notebook` as reported (NotebookStatus, or whatever an older agent sent); null when it names no valid notAfter. */
export function certificateNotAfter(notebook: unknown): string | null {
  if (typeof notebook !== "object" || notebook === null) return null;
  const certificate = (notebook as { certificate?: unknown }).certificate;
  if (typeof certificate !== "object" || certificate === null) return null;
  const notAfter = (certificate as { notAfter?: unknown }).notAfter;
  if (typeof notAfter !== "string") return null;
  // As an agent writes it (toISOString), it is already the kept form: no parse, no new string.
  if (!Number.isNaN(canonicalIsoMs(notAfter))) return notAfter;
  const ms = Date.parse(notAfter);
  if (Number.isNaN(ms)) return null;
  // Years past 9999 print as "+010000-…", which sorts before "2026-…" as text: clamp.
  return new Date(Math.min(LAST_MS, Math.max(FIRST_MS, ms))).toISOString();
}
