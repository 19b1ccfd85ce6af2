import type { VmView } from "@nbfleet/shared";

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
