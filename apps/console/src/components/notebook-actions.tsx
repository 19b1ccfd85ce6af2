import type { OperationAction } from "@nbfleet/shared/operation-lists";
/**
 * The notebook actions as one list and one toolbar: the machine page runs them on its machine
 * (its own routes), the fleet page on the selection (as a bulk operation).
 */
import type { ComponentChildren } from "preact";

export interface NotebookAction {
  label: string;
  /** The bulk operation's action. */
  action: OperationAction;
  /** The single machine's route, after `/v1/vms/{name}`. */
  path: string;
}

export const NOTEBOOK_ACTIONS: readonly NotebookAction[] = [
  { label: "Restart notebook", action: "notebook.restart", path: "/notebook/restart" },
  { label: "Stop notebook", action: "notebook.stop", path: "/notebook/stop" },
  { label: "Start notebook", action: "notebook.start", path: "/notebook/start" },
  { label: "Rotate password", action: "notebook.password", path: "/notebook/password" },
  { label: "Rotate certificate", action: "notebook.certificate", path: "/notebook/certificate" },
];

export function ActionToolbar({
  label,
  disabled,
  onRun,
  children,
}: {
  label: string;
  disabled: boolean;
  onRun: (action: NotebookAction) => void;
  children?: ComponentChildren;
}) {
  return (
    <div class="toolbar" role="toolbar" aria-label={label}>
      {NOTEBOOK_ACTIONS.map((entry) => (
        <button key={entry.action} type="button" disabled={disabled} onClick={() => onRun(entry)}>
          {entry.label}
        </button>
      ))}
      {children}
    </div>
  );
}
