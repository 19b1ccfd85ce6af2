/**
 * The fleet's live events (`GET /v1/events`, Server-Sent Events with the session cookie). The
 * browser's EventSource reconnects by itself and resumes with Last-Event-ID.
 */
import type { FleetEventView } from "@nbfleet/shared";
import { api } from "../api/client.js";

export interface EventFilter {
  vm?: string;
  kind?: string;
  /** Replay stored events after this id first (eventIdAt makes one from a time). */
  after?: string;
}

/** An event id that sorts just before every event of that moment (ids sort by creation time). */
export function eventIdAt(ms: number): string {
  return `evt_${Math.max(0, Math.floor(ms)).toString(36).padStart(9, "0")}`;
}

/** How long to wait before opening a stream the browser gave up on (it answered other than 200). */
const REOPEN_MS = 3000;

export function openEvents(
  filter: EventFilter,
  onEvent: (event: FleetEventView) => void,
  onState?: (open: boolean) => void,
): () => void {
  const query = new URLSearchParams();
  if (filter.vm) query.set("vm", filter.vm);
  if (filter.kind) query.set("kind", filter.kind);
  let lastId = filter.after ?? "";
  let source: EventSource | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let closed = false;

  const open = () => {
    const params = new URLSearchParams(query);
    if (lastId) params.set("after", lastId);
    source = new EventSource(`/v1/events${params.size ? `?${params}` : ""}`, { withCredentials: true });
    source.onmessage = (message) => {
      if (message.lastEventId) lastId = message.lastEventId;
      try {
        onEvent(JSON.parse(message.data as string) as FleetEventView);
      } catch {
        // A record we cannot read is skipped; the next one is independent.
      }
    };
    source.onopen = () => onState?.(true);
    source.onerror = () => {
      onState?.(false);
      // The browser retries a dropped stream itself (with Last-Event-ID); after a refusal (e.g.
      // 401 once the session ended) it stops: ask whether we are still signed in, then reopen.
      if (source?.readyState !== EventSource.CLOSED || closed) return;
      void api("/v1/session").catch(() => undefined);
      timer = setTimeout(open, REOPEN_MS);
    };
  };
  open();
  return () => {
    closed = true;
    if (timer) clearTimeout(timer);
    source?.close();
  };
}
