/**
 * Under systemd the notebook server runs in a transient scope of its own
 * (`systemd-run --scope`), outside the agent's service: restarting or stopping
 * nbfleet-agent.service (an upgrade, an operator) then never kills it, whatever the unit's
 * KillMode. systemd-run registers the scope and then execs the server itself, so the pid the
 * supervisor records is the server's. It needs root (the agent is root under systemd); the
 * switch to the notebook's user is systemd-run's (`--uid`/`--gid`), made after the scope exists.
 */
import type { LaunchSpec } from "./supervisor.js";

export const NOTEBOOK_SCOPE_PREFIX = "nbfleet-notebook";

/** The launch spec that starts `spec` in a scope named `<prefix>-<port>-<stamp>.scope`. */
export function inSystemdScope(spec: LaunchSpec, port: number, stamp: number = Date.now()): LaunchSpec {
  return {
    ...spec,
    argv: [
      "systemd-run",
      "--scope",
      "--quiet",
      "--collect",
      `--unit=${NOTEBOOK_SCOPE_PREFIX}-${port}-${stamp}`,
      "--description=nbfleet: the Jupyter notebook server (outlives agent restarts)",
      ...(spec.owner ? [`--uid=${spec.owner.uid}`, `--gid=${spec.owner.gid}`] : []),
      "--",
      ...spec.argv,
    ],
    owner: null,
  };
}
