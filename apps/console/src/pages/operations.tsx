import { TARGET_STATES } from "@nbfleet/shared/operation-lists";
import type { OperationDetail, OperationView } from "@nbfleet/shared/operations";
/** The operations, newest first (`GET /v1/operations`), and one operation with its targets. */
import { useState } from "preact/hooks";
import { Link } from "wouter-preact";
import { api } from "../api/client.js";
import { queryClient, useQuery } from "../api/query.js";
import { ErrorText, TableHead } from "../components/common.js";
import { when } from "../format.js";
import { can, useSession } from "../session.js";

const POLL_MS = 1000;
const finished = (op: OperationView) => op.finishedAt !== null;

function Progress({ op }: { op: OperationView }) {
  const done = op.counts.succeeded + op.counts.failed + op.counts.skipped + op.counts.cancelled;
  return (
    <div class="progress-line">
      <progress
        class="progress"
        aria-label={`Progress of ${op.id}`}
        max={op.total || 1}
        value={done}
        aria-valuemin={0}
        aria-valuemax={op.total}
        aria-valuenow={done}
        aria-valuetext={`${done}/${op.total}`}
      />
      <span>
        {done}/{op.total}
      </span>
    </div>
  );
}

export function OperationsPage() {
  const list = useQuery({
    key: ["operations"],
    fn: (signal) => api<{ items: OperationView[] }>("/v1/operations?limit=100", { signal }),
    refetchInterval: 3000,
  });
  return (
    <section>
      <h1>Operations</h1>
      <ErrorText error={list.error} />
      <table>
        <TableHead columns={["Operation", "Action", "State", "Progress", "Created", "By"]} />
        <tbody>
          {list.data?.items.map((op) => (
            <tr key={op.id}>
              <td>
                <Link href={`/operations/${encodeURIComponent(op.id)}`}>{op.id}</Link>
              </td>
              <td>{op.action}</td>
              <td>{op.state}</td>
              <td>
                <Progress op={op} />
              </td>
              <td>{when(op.createdAt)}</td>
              <td>{op.createdBy ?? "—"}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data?.items.length === 0 && <p>No operation yet.</p>}
    </section>
  );
}

export function OperationPage({ id }: { id: string }) {
  const session = useSession();
  const [cancelError, setCancelError] = useState<unknown>(null);
  const path = `/v1/operations/${encodeURIComponent(id)}`;
  const op = useQuery({
    key: ["operation", id],
    fn: (signal) => api<OperationDetail>(`${path}?targetsLimit=1000`, { signal }),
    refetchInterval: (data) => (data && finished(data) ? false : POLL_MS),
  });
  if (op.error) return <ErrorText error={op.error} />;
  if (!op.data) return <p>Loading {id}…</p>;
  const view = op.data;
  return (
    <section>
      <h1>Operation {view.id}</h1>
      <p>
        <strong>{view.action}</strong> — <span data-operation-state>{view.state}</span>
        {view.reason ? ` (${view.reason})` : ""}; max concurrency {view.maxConcurrency}, max errors{" "}
        {view.maxErrors}
        {view.rolling.enabled ? `, rolling (health timeout ${view.rolling.healthTimeoutSec} s)` : ""}
      </p>
      <Progress op={view} />
      <p class="counts">
        {TARGET_STATES.map((state) => (
          <span key={state} class="count">
            {state}: {view.counts[state]}
          </span>
        ))}
      </p>
      {can(session, "operator") && !finished(view) && (
        <button
          type="button"
          disabled={view.cancelRequestedAt !== null}
          onClick={async () => {
            setCancelError(null);
            try {
              await api<unknown>(`${path}/cancel`, { method: "POST", body: {} });
              void queryClient.invalidateQueries({ queryKey: ["operation", id] });
            } catch (caught) {
              setCancelError(caught);
            }
          }}
        >
          Cancel
        </button>
      )}
      <ErrorText error={cancelError} />
      <h2>Targets</h2>
      <table>
        <TableHead columns={["#", "Machine", "State", "Started", "Finished", "Error"]} />
        <tbody>
          {view.targets.items.map((target) => (
            <tr key={target.seq} data-target={target.vmName}>
              <td>{target.seq}</td>
              <td>
                <Link href={`/vms/${encodeURIComponent(target.vmName)}`}>{target.vmName}</Link>
              </td>
              <td>{target.state}</td>
              <td>{when(target.startedAt)}</td>
              <td>{when(target.finishedAt)}</td>
              <td>{target.error ? `${target.error.code}: ${target.error.message}` : ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {view.targets.nextCursor && <p class="muted">Showing the first 1000 targets.</p>}
    </section>
  );
}
