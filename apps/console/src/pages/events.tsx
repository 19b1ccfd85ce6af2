/** The fleet's events, live, filtered by VM and kind (prefix); the filters are in the URL. */
import type { FleetEventView } from "@nbfleet/shared";
import { useEffect, useState } from "preact/hooks";
import { useLocation, useSearch } from "wouter-preact";
import { EventsTable } from "../components/events-table.js";
import { eventIdAt, openEvents } from "../live/events.js";

const KEEP = 500;

export function EventsPage() {
  const search = useSearch();
  const [, navigate] = useLocation();
  const query = new URLSearchParams(search);
  const vm = query.get("vm") ?? "";
  const kind = query.get("kind") ?? "";
  const [events, setEvents] = useState<FleetEventView[]>([]);
  const [live, setLive] = useState(false);
  const [draft, setDraft] = useState({ vm, kind });

  useEffect(() => {
    setEvents([]);
    setDraft({ vm, kind });
    // The last hour is replayed first, then live events follow.
    return openEvents(
      { vm: vm || undefined, kind: kind || undefined, after: eventIdAt(Date.now() - 3_600_000) },
      (event) => setEvents((current) => [event, ...current].slice(0, KEEP)),
      setLive,
    );
  }, [vm, kind]);

  return (
    <section>
      <h1>Events</h1>
      <form
        class="filters"
        onSubmit={(e) => {
          e.preventDefault();
          const next = new URLSearchParams();
          if (draft.vm.trim()) next.set("vm", draft.vm.trim());
          if (draft.kind.trim()) next.set("kind", draft.kind.trim());
          navigate(next.size ? `/events?${next}` : "/events");
        }}
      >
        <label>
          Machine
          <input value={draft.vm} onInput={(e) => setDraft({ ...draft, vm: e.currentTarget.value })} />
        </label>
        <label>
          Kind
          <input
            value={draft.kind}
            placeholder="notebook."
            onInput={(e) => setDraft({ ...draft, kind: e.currentTarget.value })}
          />
        </label>
        <button type="submit">Apply</button>
        <span class={live ? "live on" : "live"}>{live ? "live" : "reconnecting…"}</span>
      </form>
      <EventsTable events={events} showMachine />
    </section>
  );
}
