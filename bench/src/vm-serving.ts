/** Whether a VM is ready for a measurement, as the controller's API shows it. */
import type { CommandView, VmView } from "@nbfleet/shared";

export type ApiGet = <T>(path: string) => Promise<T>;

/** Connected, the notebook running with no failing check, and no command of the VM still open. */
export async function serving(get: ApiGet, name: string): Promise<boolean> {
  const view = await get<VmView>(`/v1/vms/${name}`);
  if (view.agent.status !== "connected" || view.notebook.state !== "running") return false;
  if (view.health.checks.length === 0 || view.health.checks.some((c) => c.status === "fail")) return false;
  const { items } = await get<{ items: CommandView[] }>(`/v1/vms/${name}/commands`);
  return items.every((c) => c.finishedAt !== null);
}
