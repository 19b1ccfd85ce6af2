/**
 * The fleet: one page of VMs from the API (server-side paging and sorting) with the filters and
 * the sort kept in the URL, the fleet's counts per health, and rows refreshed live from `/v1/events`.
 */
import type { FleetSummary, OverallHealth, VmList, VmSortKey, VmState, VmView } from "@nbfleet/shared";
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { Link, useLocation, useSearch } from "wouter-preact";
import { api, vmPath } from "../api/client.js";
import { useQuery } from "../api/query.js";
import { BulkActions } from "../components/bulk-actions.js";
import { ErrorText, NotebookLink } from "../components/common.js";
import { Health } from "../components/health.js";
import {
  type Filters,
  HEALTHS,
  PAGE_SIZES,
  STATES,
  filtersOf,
  filtersToSearch,
  listQuery,
  matchingSelector,
  sortedBy,
} from "../fleet/filters.js";
import { ago, labelText } from "../format.js";
import { openEvents } from "../live/events.js";
import { can, useSession } from "../session.js";

const SUMMARY_REFRESH_MS = 3000;

/** Events for visible rows are gathered this long, then each named VM is fetched once. */
const REFRESH_EVERY_MS = 200;

/** The columns; a sortable one names its key in the list API's sort. */
const COLUMNS: { key: VmSortKey | null; title: string }[] = [
  { key: "name", title: "Name" },
  { key: null, title: "Labels" },
  { key: "state", title: "Machine" },
  { key: "agent", title: "Agent" },
  { key: "notebook", title: "Notebook" },
  { key: "health", title: "Health" },
  { key: "restarts", title: "Restarts" },
  { key: null, title: "URL" },
  { key: "lastSeen", title: "Last seen" },
];

export function FleetPage() {
  const session = useSession();
  const search = useSearch();
  const [, navigate] = useLocation();
  const filters = useMemo(() => filtersOf(search), [search]);
  // The pages' cursors belong to the query they were made under (its filters and sort).
  const [paging, setPaging] = useState<{ search: string; cursors: (string | null)[] }>({
    search,
    cursors: [null],
  });
  const cursors = paging.search === search ? paging.cursors : [null];
  const setCursors = (next: (current: (string | null)[]) => (string | null)[]) =>
    setPaging({ search, cursors: next(cursors) });
  const [rows, setRows] = useState<VmView[] | null>(null);
  const [nextCursor, setNextCursor] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [allMatching, setAllMatching] = useState(false);
  const [live, setLive] = useState(false);
  const [, tick] = useState(0);
  const cursor = cursors.at(-1) ?? null;

  // A new filter or sort starts again at the first page with nothing selected.
  // biome-ignore lint/correctness/useExhaustiveDependencies: runs on each change of the URL query
  useEffect(() => {
    setSelected(new Set());
    setAllMatching(false);
  }, [search]);

  useEffect(() => {
    const abort = new AbortController();
    setError(null);
    (async () => {
      try {
        const page = await api<VmList>(listQuery(filters, cursor), { signal: abort.signal });
        setRows(page.items);
        setNextCursor(page.nextCursor);
      } catch (caught) {
        if (abort.signal.aborted) return;
        // A refused filter (a bad label expression) shows why, not the previous filter's rows.
        setError(caught);
        setRows(null);
        setNextCursor(null);
      }
    })();
    return () => abort.abort();
  }, [filters, cursor]);

  // Live: an event naming a visible VM refetches that VM (batched, once per VM per tick).
  const visible = useRef(new Set<string>());
  visible.current = new Set(rows?.map((vm) => vm.name) ?? []);
  useEffect(() => {
    const due = new Set<string>();
    let timer: ReturnType<typeof setTimeout> | null = null;
    const refresh = async () => {
      timer = null;
      const names = [...due];
      due.clear();
      const fresh = await Promise.all(
        names.map((name) => api<VmView>(vmPath(name)).catch(() => ({ name, gone: true }) as const)),
      );
      setRows((current) => {
        if (!current) return current;
        const byName = new Map(fresh.map((vm) => [vm.name, vm]));
        return current.flatMap((vm) => {
          const update = byName.get(vm.name);
          if (!update) return [vm];
          return "gone" in update ? [] : [update];
        });
      });
    };
    return openEvents(
      {},
      (event) => {
        if (!event.vmName || !visible.current.has(event.vmName)) return;
        due.add(event.vmName);
        timer ??= setTimeout(refresh, REFRESH_EVERY_MS);
      },
      setLive,
    );
  }, []);

  // "Last seen … ago" keeps moving without new data.
  useEffect(() => {
    const timer = setInterval(() => tick((n) => n + 1), 10_000);
    return () => clearInterval(timer);
  }, []);

  // The whole fleet's counts (not the page's), refreshed every few seconds.
  const summary = useQuery({
    key: ["fleet-summary"],
    fn: (signal) => api<FleetSummary>("/v1/fleet/summary", { signal }),
    refetchInterval: SUMMARY_REFRESH_MS,
  });
  const counts = summary.data?.byHealth;

  const setFilter = (patch: Partial<Filters>) => {
    const query = filtersToSearch({ ...filters, ...patch });
    navigate(query ? `/?${query}` : "/");
  };

  const toggle = (name: string, on: boolean) => {
    setAllMatching(false);
    setSelected((current) => {
      const next = new Set(current);
      if (on) next.add(name);
      else next.delete(name);
      return next;
    });
  };

  // Known when everything matching fits on this one page; otherwise the operation counts it.
  const matchingCount = cursors.length === 1 && !nextCursor ? (rows?.length ?? null) : null;
  const pageAllSelected = !!rows && rows.length > 0 && rows.every((vm) => selected.has(vm.name));
  const operator = can(session, "operator");

  return (
    <section>
      <h1>Fleet</h1>
      <div class="counts" aria-label="Machines per health">
        {HEALTHS.map((status) => (
          <span key={status} class="count">
            <Health status={status} /> <strong data-health-count={status}>{counts?.[status] ?? "…"}</strong>
          </span>
        ))}
        <span class="muted">of {summary.data?.total ?? "…"} machines</span>
        <span class={live ? "live on" : "live"}>{live ? "live" : "reconnecting…"}</span>
      </div>
      <FilterForm filters={filters} onApply={setFilter} />
      <ErrorText error={error} />
      {operator && (
        <div class="selection">
          <label>
            <input
              type="checkbox"
              checked={allMatching}
              onChange={(e) => setAllMatching(e.currentTarget.checked)}
            />
            All matching the filter
          </label>
          <span class="muted">
            {allMatching
              ? `every machine matching the filter${matchingCount === null ? " (more than this page)" : ` (${matchingCount})`}`
              : `${selected.size} selected`}
          </span>
          <BulkActions
            count={allMatching ? matchingCount : selected.size}
            selector={() =>
              allMatching ? matchingSelector(filters) : Promise.resolve({ names: [...selected] })
            }
          />
        </div>
      )}
      {rows && (
        <table class="fleet">
          <thead>
            <tr>
              {operator && (
                <th scope="col" class="select">
                  <input
                    type="checkbox"
                    aria-label="Select all on this page"
                    checked={pageAllSelected}
                    onChange={(e) => {
                      const on = e.currentTarget.checked;
                      setAllMatching(false);
                      setSelected(on ? new Set(rows?.map((vm) => vm.name)) : new Set());
                    }}
                  />
                </th>
              )}
              {COLUMNS.map(({ key, title }) => (
                <th
                  key={title}
                  scope="col"
                  aria-sort={
                    key && filters.sort === key
                      ? filters.order === "asc"
                        ? "ascending"
                        : "descending"
                      : undefined
                  }
                >
                  {key ? (
                    <button
                      type="button"
                      class="sort"
                      title={`Sort by ${title}`}
                      onClick={() => setFilter(sortedBy(filters, key))}
                    >
                      {title}
                    </button>
                  ) : (
                    title
                  )}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((vm) => (
              <FleetRow
                key={vm.name}
                vm={vm}
                selectable={operator}
                selected={allMatching || selected.has(vm.name)}
                onToggle={toggle}
              />
            ))}
          </tbody>
        </table>
      )}
      {rows && rows.length === 0 && <p>No machine matches.</p>}
      <nav class="pager" aria-label="Pages">
        <button
          type="button"
          disabled={cursors.length <= 1}
          onClick={() => setCursors((c) => c.slice(0, -1))}
        >
          Previous page
        </button>
        <span>Page {cursors.length}</span>
        <button
          type="button"
          disabled={!nextCursor}
          onClick={() => nextCursor && setCursors((c) => [...c, nextCursor])}
        >
          Next page
        </button>
      </nav>
    </section>
  );
}

function FleetRow({
  vm,
  selectable,
  selected,
  onToggle,
}: {
  vm: VmView;
  selectable: boolean;
  selected: boolean;
  onToggle: (name: string, on: boolean) => void;
}) {
  return (
    <tr data-vm={vm.name}>
      {selectable && (
        <td class="select">
          <input
            type="checkbox"
            aria-label={`Select ${vm.name}`}
            checked={selected}
            onChange={(e) => onToggle(vm.name, e.currentTarget.checked)}
          />
        </td>
      )}
      <td>
        <Link href={`/vms/${encodeURIComponent(vm.name)}`}>{vm.name}</Link>
      </td>
      <td class="labels">
        {labelText(vm.labels).map((text) => (
          <span key={text} class="label">
            {text}
          </span>
        ))}
      </td>
      <td>{vm.state}</td>
      <td>{vm.agent.status}</td>
      <td>{vm.notebook.state ?? "—"}</td>
      <td>
        <Health status={vm.health.status} />
      </td>
      <td>{vm.notebook.restarts}</td>
      <td>
        <NotebookLink url={vm.notebook.url} />
      </td>
      <td title={vm.agent.lastSeenAt ?? undefined}>{ago(vm.agent.lastSeenAt)}</td>
    </tr>
  );
}

function FilterForm({ filters, onApply }: { filters: Filters; onApply: (patch: Partial<Filters>) => void }) {
  const [label, setLabel] = useState(filters.label);
  useEffect(() => setLabel(filters.label), [filters.label]);
  return (
    <form
      class="filters"
      onSubmit={(e) => {
        e.preventDefault();
        onApply({ label: label.trim() });
      }}
    >
      <label>
        Label filter
        <input
          value={label}
          placeholder="team=ml,env!=prod,gpu,!spot"
          title="key=value, key!=value, key (has it) or !key (has it not), comma-separated; all must hold"
          onInput={(e) => setLabel(e.currentTarget.value)}
        />
      </label>
      <label>
        Health filter
        <select
          value={filters.health}
          onChange={(e) => onApply({ health: e.currentTarget.value as OverallHealth | "" })}
        >
          <option value="">any</option>
          {HEALTHS.map((h) => (
            <option key={h} value={h}>
              {h}
            </option>
          ))}
        </select>
      </label>
      <label>
        State filter
        <select
          value={filters.state}
          onChange={(e) => onApply({ state: e.currentTarget.value as VmState | "" })}
        >
          <option value="">any</option>
          {STATES.map((s) => (
            <option key={s} value={s}>
              {s}
            </option>
          ))}
        </select>
      </label>
      <label>
        Per page
        <select value={filters.limit} onChange={(e) => onApply({ limit: Number(e.currentTarget.value) })}>
          {(PAGE_SIZES.includes(filters.limit) ? PAGE_SIZES : [filters.limit, ...PAGE_SIZES]).map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
      </label>
      <button type="submit">Apply</button>
    </form>
  );
}
