import type { OperationAction } from "@nbfleet/shared/operation-lists";
import type { CreatedOperation, Selector } from "@nbfleet/shared/operations";
/**
 * Bulk actions on the fleet page: an action button opens a form (max concurrency, max errors,
 * rolling) whose confirmation names how many machines it touches; `POST /v1/operations`.
 */
import { useState } from "preact/hooks";
import { useLocation } from "wouter-preact";
import { api } from "../api/client.js";
import { ErrorText, ShownOnce } from "./common.js";
import { parseLimit } from "./limits.js";
import { Modal } from "./modal.js";
import { ActionToolbar, type NotebookAction } from "./notebook-actions.js";

interface Props {
  /** How many machines the selector touches (null while counting). */
  count: number | null;
  /** Builds the selector when the operator confirms. */
  selector: () => Promise<Selector>;
}

export function BulkActions({ count, selector }: Props) {
  const [chosen, setChosen] = useState<NotebookAction | null>(null);
  return (
    <div class="bulk">
      <ActionToolbar label="Bulk actions" disabled={count === 0} onRun={setChosen} />
      {chosen && (
        <BulkForm
          action={chosen.action}
          label={chosen.label}
          count={count}
          selector={selector}
          onClose={() => setChosen(null)}
        />
      )}
    </div>
  );
}

function BulkForm({
  action,
  label,
  count,
  selector,
  onClose,
}: Props & { action: OperationAction; label: string; onClose: () => void }) {
  const [, navigate] = useLocation();
  const [maxConcurrency, setMaxConcurrency] = useState("1");
  const [maxErrors, setMaxErrors] = useState("0");
  const [rolling, setRolling] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [passwords, setPasswords] = useState<{ id: string; items: [string, string][] } | null>(null);

  const machines =
    count === null ? "every machine matching the filter" : `${count} machine${count === 1 ? "" : "s"}`;

  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const body = {
        action,
        selector: await selector(),
        maxConcurrency: parseLimit(maxConcurrency, "Max concurrency", 1),
        maxErrors: parseLimit(maxErrors, "Max errors", 0),
        rolling: { enabled: rolling },
      };
      const created = await api<CreatedOperation>("/v1/operations", { method: "POST", body });
      if (created.passwords) {
        setPasswords({ id: created.operation.id, items: Object.entries(created.passwords) });
      } else {
        navigate(`/operations/${encodeURIComponent(created.operation.id)}`);
      }
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  if (passwords) {
    return (
      <Modal class="panel" label="New passwords">
        <h3>New passwords</h3>
        {passwords.items.map(([name, password]) => (
          <ShownOnce key={name} title={`New password for ${name}`} secret={password} />
        ))}
        <button type="button" onClick={() => navigate(`/operations/${encodeURIComponent(passwords.id)}`)}>
          Open operation
        </button>
      </Modal>
    );
  }

  return (
    <Modal class="panel bulk-form" label={`${label} on ${machines}`} onClose={onClose}>
      <form onSubmit={submit}>
        <h3>{label}</h3>
        <label>
          Max concurrency
          <input value={maxConcurrency} onInput={(e) => setMaxConcurrency(e.currentTarget.value)} />
        </label>
        <label>
          Max errors
          <input value={maxErrors} onInput={(e) => setMaxErrors(e.currentTarget.value)} />
        </label>
        <label>
          <input type="checkbox" checked={rolling} onChange={(e) => setRolling(e.currentTarget.checked)} />
          Rolling (wait for each machine to be healthy again)
        </label>
        <p class="confirm-text">
          {label} on {machines}?
        </p>
        <ErrorText error={error} />
        <button type="submit" disabled={busy || count === 0}>
          Confirm
        </button>{" "}
        <button type="button" onClick={onClose}>
          Cancel
        </button>
      </form>
    </Modal>
  );
}
