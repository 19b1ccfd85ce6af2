/** The controller's event stream (`GET /v1/events`, server-sent events) of one kind, read as it arrives. */
import { EventSourceParserStream } from "eventsource-parser/stream";

export interface EventWaiter {
  /** Resolves at the first event whose `data` matches; throws if the stream ends first. */
  until(match: (data: Record<string, unknown>) => boolean): Promise<void>;
  close(): void;
}

export async function openEvents(
  controller: { url: string; token: string },
  kind: string,
): Promise<EventWaiter> {
  const abort = new AbortController();
  const response = await fetch(`${controller.url}/v1/events?kind=${encodeURIComponent(kind)}`, {
    headers: { authorization: `Bearer ${controller.token}`, accept: "text/event-stream" },
    signal: abort.signal,
  });
  if (!response.ok || !response.body) throw new Error(`GET /v1/events: ${response.status}`);
  const events = response.body
    .pipeThrough(new TextDecoderStream())
    .pipeThrough(new EventSourceParserStream({ onError: "terminate" }))
    .getReader();
  return {
    async until(match) {
      for (;;) {
        const { value, done } = await events.read();
        if (done) throw new Error(`the event stream ended before the awaited ${kind} event`);
        if (!value.data) continue;
        const event = JSON.parse(value.data) as { data?: Record<string, unknown> };
        if (match(event.data ?? {})) return;
      }
    },
    close: () => abort.abort(),
  };
}
