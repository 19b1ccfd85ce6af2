/**
 * The in-process event bus: every fleet event (from agents or from the controller itself) is
 * stored through the write-behind buffer and handed to live subscribers (the SSE stream).
 */
import type { ClusterClock } from "../cluster/cluster-clock.js";
import { type EventLevel, type FleetEvent, toEventRow } from "../store/events-repo.js";
import { newId } from "../store/ids.js";
import type { WriteBehind } from "../store/write-behind.js";

export type { FleetEvent };

export interface NewEvent {
  vmName: string | null;
  source?: FleetEvent["source"];
  kind: string;
  level?: EventLevel;
  message: string;
  data?: Record<string, unknown> | null;
  at?: string;
}

export type EventListener = (event: FleetEvent) => void;

/**
 * The time an event reports, in the one form stored (UTC, milliseconds), so that its text sorts
 * like the time it says; one Date cannot read (a leap second) becomes the time it arrived.
 */
function storedTime(at: string | undefined, now: number): string {
  const reported = at === undefined ? Number.NaN : Date.parse(at);
  return new Date(Number.isNaN(reported) ? now : reported).toISOString();
}

export class EventBus {
  private readonly listeners = new Set<EventListener>();

  constructor(
    private readonly writer: WriteBehind,
    /** Event ids sort by it: with replicas, the cluster's clock (cluster-clock.ts). */
    private readonly clock: ClusterClock,
    private readonly onListenerError: (error: unknown) => void = () => {},
  ) {}

  emit(input: NewEvent): FleetEvent {
    const now = this.clock.now();
    const event: FleetEvent = {
      id: newId("evt", now),
      at: storedTime(input.at, now),
      vmName: input.vmName,
      source: input.source ?? "controller",
      kind: input.kind,
      level: input.level ?? "info",
      message: input.message,
      data: input.data ?? null,
    };
    this.writer.appendEvent(toEventRow(event));
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.onListenerError(error);
      }
    }
    return event;
  }

  subscribe(listener: EventListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get subscriberCount(): number {
    return this.listeners.size;
  }
}
