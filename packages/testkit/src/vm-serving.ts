import type { VmView } from "@nbfleet/shared";

/**
 * A `resources` warning whose only finding is the host's CPU load: on this shared 2-core test
 * host the run queue often passes twice the cores, which is not the machine under test's doing.
 */
export function hostLoadOnly(check: { name: string; status: string; message: string }): boolean {
  return (
    check.name === "resources" &&
    check.status === "warn" &&
    /^cpu overloaded: load [\d.]+ on \d+ cores$/.test(check.message)
  );
}

/**
 * Connected, running, every check passing — except that a busy test host may make the
 * `resources` check warn about load.
 */
export function servingButForLoad(view: VmView): boolean {
  return (
    view.agent.status === "connected" &&
    view.notebook.state === "running" &&
    view.health.checks.length > 0 &&
    view.health.checks.every(
      (c) => c.status === "pass" || (c.name === "resources" && c.status === "warn" && /load/.test(c.message)),
    )
  );
}
