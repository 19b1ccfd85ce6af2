/** The human form of the agent's state, as `status` and the notebook commands print it. */
import type { AgentState } from "@nbfleet/shared";

export function formatState(agent: string, state: AgentState): string {
  const nb = state.notebook;
  const lines = [
    `agent:     ${agent}`,
    `notebook:  ${nb.state}${nb.pid ? ` (pid ${nb.pid})` : ""}, restarts ${nb.restarts}`,
    `url:       ${nb.url}`,
    `cert:      ${nb.certificate ? `SHA-256 ${nb.certificate.fingerprintSha256}, until ${nb.certificate.notAfter}` : "none"}`,
    `health:    ${state.health.status}`,
    ...state.health.checks.map((c) => `  ${c.status.padEnd(4)} ${c.name.padEnd(9)} ${c.message}`),
  ];
  if (nb.lastError) lines.push(`last error: ${nb.lastError}`);
  return lines.join("\n");
}
