/** Store records → the API's JSON shapes (VmView, CommandView of packages/shared). */
import type { BootstrapTokenView, CommandView, VmView } from "@nbfleet/shared";
import { compareVersions, isArtifactVersion } from "@nbfleet/shared/artifact-signature";
import type { LiveAgent } from "../gateway/gateway.js";
import type { BootstrapTokenRecord } from "../store/agent-secrets-repo.js";
import type { CommandRecord } from "../store/commands-repo.js";
import type { VmRecord } from "../store/vms-repo.js";

/**
 * `live` is the gateway's view of the agent: the link state there beats the stored one. An agent
 * another replica holds (PostgreSQL) has no live entry here: the row that replica keeps is the view.
 * `bootstrap` is the VM's outstanding bootstrap token, if any. `newestVersion`: the newest agent
 * artifact, which an agent on an older version is `outdated` against (null: not known).
 */
export function toVmView(
  vm: VmRecord,
  live: LiveAgent | undefined,
  bootstrap: BootstrapTokenRecord | null = null,
  nowMs = Date.now(),
  newestVersion: string | null = null,
): VmView {
  const { status } = vm;
  const connected = live !== undefined || (status.agentStatus === "connected" && status.replicaId !== null);
  const agentStatus = connected
    ? "connected"
    : status.agentStatus === "connected"
      ? "disconnected"
      : status.agentStatus;
  const notebook = live?.notebook ?? status.notebook;
  const agentVersion = live?.version ?? status.agentInfo?.version ?? null;
  const report = live?.healthReport ?? status.healthReport;
  const lastSeenAt = live?.lastSeenAt ?? status.lastSeenAt;
  const reasons = connected
    ? (report?.reasons ?? [])
    : [
        agentStatus === "never_connected"
          ? "the agent has not connected yet"
          : `the agent is disconnected (last seen ${lastSeenAt ?? "never"})`,
      ];
  return {
    name: vm.name,
    provider: vm.provider,
    state: vm.state,
    labels: vm.labels,
    certificate: { mode: vm.certificate.mode, hostname: vm.certificate.hostname },
    error: vm.error,
    createdAt: vm.createdAt,
    updatedAt: vm.updatedAt,
    agent: {
      status: agentStatus,
      lastSeenAt,
      connectedAt: live?.connectedAt ?? status.connectedAt,
      version: agentVersion,
      outdated: isOutdated(agentVersion, newestVersion),
      hostname: status.agentInfo?.hostname ?? null,
      bootstrap: bootstrap && toBootstrapView(vm.name, bootstrap, connected, nowMs),
    },
    notebook: {
      state: notebook?.state ?? null,
      url: notebook?.url ?? vm.notebookUrl,
      pid: notebook?.pid ?? null,
      port: notebook?.port ?? null,
      restarts: notebook?.restarts ?? 0,
      startedAt: notebook?.startedAt ?? null,
      generation: notebook?.generation ?? null,
      version: notebook?.version ?? null,
      lastError: notebook?.lastError ?? null,
      certificate: notebook?.certificate ?? null,
    },
    health: {
      status: connected ? (report?.status ?? "unknown") : "unknown",
      reasons,
      checks: report?.checks ?? [],
      observedAt: report?.observedAt ?? null,
    },
  };
}

/** Older than the newest artifact; null when either version is unknown (or not a semver). */
export function isOutdated(version: string | null, newest: string | null): boolean | null {
  if (version === null || newest === null || !isArtifactVersion(version) || !isArtifactVersion(newest))
    return null;
  return compareVersions(version, newest) < 0;
}

/** `connected`: the agent is on the link now (for an exchanged token: on the session it opened). */
export function toBootstrapView(
  vmName: string,
  token: BootstrapTokenRecord,
  connected: boolean,
  nowMs = Date.now(),
): BootstrapTokenView {
  const expired = Date.parse(token.expiresAt) <= nowMs;
  const state = expired ? "expired" : token.exchangedAt ? "exchanged" : "unused";
  const reissue =
    `issue a new one with \`nbfleet vm bootstrap-token ${vmName}\` ` +
    `(POST /v1/vms/${vmName}/bootstrap-token) and give it to the agent`;
  const note =
    state === "expired"
      ? token.exchangedAt
        ? `the bootstrap token was exchanged at ${token.exchangedAt} and expired at ${token.expiresAt}; the agent has not connected with the credential it got since${
            connected ? " (it is still on the session the token opened)" : ""
          }. Should it have lost that credential, ${reissue}`
        : `the bootstrap token expired at ${token.expiresAt} before the agent used it; ${reissue}`
      : state === "exchanged"
        ? `the agent traded its bootstrap token for a credential at ${token.exchangedAt}; the token stays good (until ${token.expiresAt}) until the agent connects with that credential`
        : `waiting for the agent to connect with its bootstrap token (good until ${token.expiresAt})`;
  return {
    state,
    issuedAt: token.issuedAt,
    expiresAt: token.expiresAt,
    exchangedAt: token.exchangedAt,
    note,
  };
}

/** What the API shows of a command's params: only the agent ever gets a password.set's hash. */
export const REDACTED = "[redacted]";

function shownParams(command: CommandRecord): Record<string, unknown> {
  // An argon2 hash of a password someone chose can be guessed offline; the caller who set the
  // password knows it, and every other reader (a viewer included) must not get the hash.
  return command.name === "password.set" ? { ...command.params, hash: REDACTED } : command.params;
}

export function toCommandView(command: CommandRecord, agentConnected: boolean): CommandView {
  return {
    id: command.id,
    vmName: command.vmName,
    name: command.name,
    params: shownParams(command),
    state: command.state,
    createdAt: command.createdAt,
    sentAt: command.sentAt,
    ackedAt: command.ackedAt,
    finishedAt: command.finishedAt,
    expiresAt: command.expiresAt,
    timeoutSec: command.timeoutMs / 1000,
    attempts: command.attempts,
    result: command.result,
    error: command.error,
    operationId: command.operationId,
    agentConnected,
    note: noteFor(command, agentConnected),
  };
}

function noteFor(command: CommandRecord, agentConnected: boolean): string | null {
  if ((command.state === "queued" || command.state === "sent") && !agentConnected) {
    return `the agent of ${command.vmName} is offline: the command is queued and is delivered when it reconnects, or expires at ${command.expiresAt}`;
  }
  if (command.state === "expired") return `the agent did not take the command before ${command.expiresAt}`;
  if (command.state === "timed_out") return `the agent gave no result within ${command.timeoutMs / 1000} s`;
  return null;
}
