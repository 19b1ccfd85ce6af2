/**
 * One machine: checks, notebook facts, actions, recent events and commands, the log panel and
 * (admin) the terminal. The VM refreshes on each of its events.
 */
import type { CommandView, FleetEventView, VmView } from "@nbfleet/shared";
import { Suspense, lazy } from "preact/compat";
import { useEffect, useState } from "preact/hooks";
import { useLocation } from "wouter-preact";
import { api, vmPath } from "../api/client.js";
import { queryClient, useQuery } from "../api/query.js";
import { ErrorText, NotebookLink, ShownOnce, TableHead } from "../components/common.js";
import { EventsTable } from "../components/events-table.js";
import { CheckStatus, Health } from "../components/health.js";
import { LogsPanel } from "../components/logs-panel.js";
import { ActionToolbar, type NotebookAction } from "../components/notebook-actions.js";
import { ago, labelText, when } from "../format.js";
import { eventIdAt, openEvents } from "../live/events.js";
import { can, useSession } from "../session.js";
import { hasTerminalSession } from "../terminal/session-store.js";

const TerminalPanel = lazy(() => import("../terminal/terminal-panel.js").then((m) => m.TerminalPanel));
const RECENT_EVENTS = 50;

export function MachinePage({ name }: { name: string }) {
  const session = useSession();
  const vm = useQuery({ key: ["vm", name], fn: (signal) => api<VmView>(vmPath(name), { signal }) });
  const commands = useQuery({
    key: ["vm", name, "commands"],
    fn: (signal) => api<{ items: CommandView[] }>(`${vmPath(name)}/commands?limit=20`, { signal }),
  });
  const [events, setEvents] = useState<FleetEventView[]>([]);

  useEffect(() => {
    setEvents([]);
    let timer: ReturnType<typeof setTimeout> | null = null;
    // The last day's stored events first, then live ones.
    return openEvents({ vm: name, after: eventIdAt(Date.now() - 86_400_000) }, (event) => {
      setEvents((current) => [event, ...current].slice(0, RECENT_EVENTS));
      timer ??= setTimeout(() => {
        timer = null;
        void queryClient.invalidateQueries({ queryKey: ["vm", name] });
      }, 200);
    });
  }, [name]);

  if (!vm.data) return vm.error ? <ErrorText error={vm.error} /> : <p>Loading {name}…</p>;
  const view = vm.data;
  const cert = view.notebook.certificate;
  return (
    <section class="machine">
      <h1>{view.name}</h1>
      <ErrorText error={vm.error} />
      <p>
        <Health status={view.health.status} /> <span class="muted">machine {view.state}</span>
      </p>
      {can(session, "operator") && <MachineActions view={view} />}
      <dl class="facts">
        <dt>Labels</dt>
        <dd>{labelText(view.labels).join(", ") || "—"}</dd>
        <dt>Notebook</dt>
        <dd data-fact="notebook-state">{view.notebook.state ?? "—"}</dd>
        <dt>URL</dt>
        <dd>
          <NotebookLink url={view.notebook.url} />
        </dd>
        <dt>PID</dt>
        <dd data-fact="pid">{view.notebook.pid ?? "—"}</dd>
        <dt>Restarts</dt>
        <dd data-fact="restarts">{view.notebook.restarts}</dd>
        <dt>Jupyter version</dt>
        <dd>
          {view.notebook.version ?? "—"}
          {view.notebook.generation ? ` (${view.notebook.generation})` : ""}
        </dd>
        <dt>Certificate SHA-256</dt>
        <dd class="mono">{cert?.fingerprintSha256 ?? "—"}</dd>
        <dt>Certificate expires</dt>
        <dd>{cert ? when(cert.notAfter) : "—"}</dd>
        <dt>Agent</dt>
        <dd>
          {view.agent.status}
          {view.agent.version ? `, version ${view.agent.version}` : ""}
        </dd>
        <dt>Last seen</dt>
        <dd title={view.agent.lastSeenAt ?? undefined}>{ago(view.agent.lastSeenAt)}</dd>
        {view.notebook.lastError && (
          <>
            <dt>Last error</dt>
            <dd>
              <pre>{view.notebook.lastError}</pre>
            </dd>
          </>
        )}
      </dl>

      <h2>Checks</h2>
      <table>
        <TableHead columns={["Check", "Status", "Message", "Checked"]} />
        <tbody>
          {view.health.checks.map((check) => (
            <tr key={check.name}>
              <td>{check.name}</td>
              <td>
                <CheckStatus status={check.status} />
              </td>
              <td>{check.message}</td>
              <td>{ago(check.checkedAt)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {view.health.checks.length === 0 && <p class="muted">No checks reported yet.</p>}

      <LogsPanel name={view.name} />

      {can(session, "admin") && <Terminal name={view.name} />}

      <h2>Recent events</h2>
      <EventsTable events={events} showMachine={false} />

      <h2>Recent commands</h2>
      <ErrorText error={commands.error} />
      <table>
        <TableHead columns={["Created", "Command", "State", "Error"]} />
        <tbody>
          {commands.data?.items.map((command) => (
            <tr key={command.id}>
              <td>{when(command.createdAt)}</td>
              <td>{command.name}</td>
              <td>{command.state}</td>
              <td>{command.error ? `${command.error.code}: ${command.error.message}` : ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

/**
 * The terminal opens on request (each one is a shell on the guest), or at once when this tab
 * already has a session for the machine to reattach to.
 */
function Terminal({ name }: { name: string }) {
  const [open, setOpen] = useState(() => hasTerminalSession(name));
  if (!open) {
    return (
      <section aria-label="Terminal">
        <h2>Terminal</h2>
        <button type="button" onClick={() => setOpen(true)}>
          Terminal
        </button>
      </section>
    );
  }
  return (
    <Suspense fallback={<p>Loading the terminal…</p>}>
      <TerminalPanel name={name} />
    </Suspense>
  );
}

function MachineActions({ view }: { view: VmView }) {
  const [, navigate] = useLocation();
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [done, setDone] = useState<string | null>(null);
  const [password, setPassword] = useState<string | null>(null);
  const [deleting, setDeleting] = useState(false);
  const [typed, setTyped] = useState("");
  const base = vmPath(view.name);

  const run = async (label: string, call: () => Promise<void>) => {
    setBusy(label);
    setError(null);
    setDone(null);
    try {
      await call();
      setDone(`${label}: sent`);
      void queryClient.invalidateQueries({ queryKey: ["vm", view.name] });
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(null);
    }
  };
  const call = (action: NotebookAction) => async () => {
    const result = await api<{ password?: string | null }>(`${base}${action.path}`, {
      method: "POST",
      body: {},
    });
    if (action.action === "notebook.password") setPassword(result.password ?? null);
  };

  return (
    <div class="actions">
      <ActionToolbar
        label="Actions"
        disabled={busy !== null}
        onRun={(action) => run(action.label, call(action))}
      >
        <button type="button" class="danger" onClick={() => setDeleting(true)}>
          Delete machine
        </button>
      </ActionToolbar>
      {done && <output class="muted">{done}</output>}
      <ErrorText error={error} />
      {password && <ShownOnce title={`New password for ${view.name}`} secret={password} />}
      {deleting && (
        <form
          class="panel"
          onSubmit={async (e) => {
            e.preventDefault();
            await run("Delete machine", async () => {
              await api<void>(base, { method: "DELETE" });
              navigate("/");
            });
          }}
        >
          <p>
            This deletes the machine and everything it left. Type <strong>{view.name}</strong> to confirm.
          </p>
          <label>
            Machine name
            <input value={typed} onInput={(e) => setTyped(e.currentTarget.value)} autoComplete="off" />
          </label>
          <button type="submit" class="danger" disabled={typed !== view.name || busy !== null}>
            Delete
          </button>{" "}
          <button type="button" onClick={() => setDeleting(false)}>
            Cancel
          </button>
        </form>
      )}
    </div>
  );
}
