/**
 * The fleet's live events (`GET /v1/events`, Server-Sent Events with the session cookie). The
 * browser's EventSource reconnects by itself and resumes with Last-Event-ID.
 */
import type { FleetEventView } from "@nbfleet/shared";

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

export function openEvents(
  filter: EventFilter,
  onEvent: (event: FleetEventView) => void,
  onState?: (open: boolean) => void,
): () => void {
  const query = new URLSearchParams();
  if (filter.vm) query.set("vm", filter.vm);
  if (filter.kind) query.set("kind", filter.kind);
  if (filter.after) query.set("after", filter.after);
  const source = new EventSource(`/v1/events${query.size ? `?${query}` : ""}`, { withCredentials: true });
  source.onmessage = (message) => {
    try {
      onEvent(JSON.parse(message.data as string) as FleetEventView);
    } catch {
      // A line we cannot read is skipped; the next one is independent.
    }
  };
  source.onopen = () => onState?.(true);
  source.onerror = () => onState?.(false);
  return () => source.close();
}
