/** How the CLI shows things: JSON when asked, otherwise tables and short lines for people. */
import type { CommandView, VmView } from "@nbfleet/shared";
import Table from "cli-table3";
import { certificateCell, certificateLines } from "./certificate-view.js";

export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}

export function table(head: string[], rows: string[][]): string {
  const t = new Table({
    head,
    style: { head: [], border: [] },
    chars: { mid: "", "left-mid": "", "mid-mid": "", "right-mid": "" },
  });
  t.push(...rows);
  return t.toString();
}

const HEALTH_MARK: Record<string, string> = { healthy: "●", degraded: "◐", unhealthy: "✖", unknown: "?" };

export function healthLabel(status: string): string {
  return `${HEALTH_MARK[status] ?? " "} ${status}`;
}

export function ago(iso: string | null, now = Date.now()): string {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (seconds < 60) return `${seconds}s ago`;
  if (seconds < 3600) return `${Math.round(seconds / 60)}m ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)}h ago`;
  return `${Math.round(seconds / 86400)}d ago`;
}

export function vmTable(vms: VmView[]): string {
  return table(
    ["NAME", "MACHINE", "AGENT", "VERSION", "NOTEBOOK", "HEALTH", "CERT", "RESTARTS", "URL", "SEEN"],
    vms.map((vm) => [
      vm.name,
      vm.state,
      vm.agent.status,
      agentVersionLabel(vm),
      vm.notebook.state ?? "-",
      healthLabel(vm.health.status),
      certificateCell(vm),
      String(vm.notebook.restarts),
      vm.notebook.url ?? "-",
      ago(vm.agent.lastSeenAt),
    ]),
  );
}

/** The agent's version, marked when older than the controller's newest artifact. */
export function agentVersionLabel(vm: VmView): string {
  if (!vm.agent.version) return "-";
  return vm.agent.outdated ? `${vm.agent.version} (outdated)` : vm.agent.version;
}

export function vmDetails(vm: VmView): string {
  const lines = [
    `name:        ${vm.name} (${vm.provider}, machine ${vm.state})`,
    `labels:      ${
      Object.entries(vm.labels)
        .map(([k, v]) => `${k}=${v}`)
        .join(", ") || "-"
    }`,
    `agent:       ${vm.agent.status}, last seen ${ago(vm.agent.lastSeenAt)}${vm.agent.version ? `, v${agentVersionLabel(vm)}` : ""}`,
    ...(vm.agent.bootstrap ? [`bootstrap:   ${vm.agent.bootstrap.state}: ${vm.agent.bootstrap.note}`] : []),
    `notebook:    ${vm.notebook.state ?? "-"}${vm.notebook.pid ? ` (pid ${vm.notebook.pid})` : ""}, restarts ${vm.notebook.restarts}${vm.notebook.version ? `, Jupyter ${vm.notebook.version}` : ""}`,
    `url:         ${vm.notebook.url ?? "-"}`,
    ...certificateLines(vm),
    `health:      ${healthLabel(vm.health.status)}`,
    ...vm.health.checks.map((c) => `  ${c.status.padEnd(4)} ${c.name.padEnd(9)} ${c.message}`),
  ];
  if (vm.error) lines.push(`error:       ${vm.error}`);
  if (vm.notebook.lastError) lines.push(`last error:  ${vm.notebook.lastError}`);
  return lines.join("\n");
}

export function commandLine(command: CommandView): string {
  const base = `${command.name} on ${command.vmName}: ${command.state} (command ${command.id})`;
  if (command.error) return `${base}: ${command.error.code} ${command.error.message}`;
  return command.note ? `${base}; ${command.note}` : base;
}
