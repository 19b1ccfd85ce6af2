/**
 * Ending a server-side WebSocket within a deadline. ws waits up to 30 s for the peer to answer a
 * close frame; a peer that never does would hold its socket (and whatever counts it) that long.
 * Here the close frame goes out first, so a well-behaved peer still reads the code and reason,
 * and the socket is destroyed after a short grace whatever the peer does.
 */
import WebSocket from "ws";

/** How long a peer gets to read a close frame (and answer it) before its socket is destroyed. */
export const CLOSE_GRACE_MS = 1000;

/** A close reason is at most 123 bytes on the wire. */
export function clipReason(reason: string): string {
  const bytes = Buffer.from(reason);
  if (bytes.length <= 123) return reason;
  // Cut on a character boundary: a split multi-byte character would make the frame invalid.
  return new TextDecoder().decode(bytes.subarray(0, 123)).replace(/\uFFFD$/, "");
}

export function closeWithin(ws: WebSocket, code: number, reason: string, graceMs = CLOSE_GRACE_MS): void {
  if (ws.readyState === WebSocket.CLOSED) return;
  if (ws.readyState !== WebSocket.CLOSING) ws.close(code, clipReason(reason));
  destroyAfter(ws, graceMs);
}

/**
 * For @fastify/websocket's `errorHandler`: ws has already begun the close an error calls for
 * (1009 for a frame over `maxPayload`, 1002/1007 for broken frames) and ends the socket once
 * that close frame is written; destroying it at once would lose the frame (the peer would see
 * 1006). Other errors end the socket now.
 */
export function endAfterSocketError(ws: WebSocket, graceMs = CLOSE_GRACE_MS): void {
  if (ws.readyState === WebSocket.CLOSING) destroyAfter(ws, graceMs);
  else ws.terminate();
}

/** Sockets that already have their deadline. */
const scheduled = new WeakSet<WebSocket>();

function destroyAfter(ws: WebSocket, graceMs: number): void {
  if (scheduled.has(ws)) return;
  scheduled.add(ws);
  const timer = setTimeout(() => ws.terminate(), graceMs);
  timer.unref();
  ws.once("close", () => clearTimeout(timer));
}
