/**
 * The agent's error catalogue: every failure a person may see has a stable code, a message
 * they can act on, and the value that was wrong. Codes are also sent to the controller in
 * command results.
 */
import { CodedError } from "@nbfleet/shared/coded-error";

export const AgentErrorCodes = {
  NBF_INVALID_INPUT: "a flag, config file or command parameter is invalid",
  NBF_INSTALL_NEEDS_ROOT: "packages are missing and installing them needs root",
  NBF_INSTALL_LOCKED: "the package manager lock stayed held",
  NBF_INSTALL_FAILED: "an install command failed",
  NBF_JUPYTER_NOT_FOUND: "no Jupyter notebook server is installed",
  NBF_PORT_IN_USE: "the notebook port is taken by another process",
  NBF_RUN_AS_ROOT_REFUSED: "the notebook would run as root without --allow-root",
  NBF_USER_SETUP_FAILED: "the unprivileged notebook user could not be prepared",
  NBF_UNSAFE_PATH:
    "a file the agent manages as root is a symbolic link or another kind of file than it should be",
  NBF_CERT_INVALID: "a certificate or key is unreadable, mismatched or expired",
  NBF_TLS_UNREACHABLE: "a TLS endpoint did not complete a handshake",
  NBF_PASSWORD_INVALID: "a password or password hash is unusable",
  NBF_ARGON2_UNAVAILABLE: "the native argon2 module is missing for this platform",
  NBF_NOTEBOOK_START_FAILED: "the notebook server did not become ready",
  NBF_NOTEBOOK_FAILED: "the notebook server crashed too often and was given up",
  NBF_AGENT_NOT_RUNNING: "no agent is running for this data directory",
  NBF_AGENT_ALREADY_RUNNING: "an agent already runs for this data directory",
  NBF_COMMAND_UNKNOWN: "the command is not known to this agent",
  NBF_COMMAND_EXPIRED: "the command's deadline passed before it could start",
  NBF_PTY_UNAVAILABLE: "the native node-pty module is missing for this platform",
  NBF_PTY_SPAWN_FAILED: "the shell or command of a terminal session could not be started",
  NBF_STREAM_LIMIT:
    "too many terminal sessions or log streams are open on this agent, or a terminal session's process left too much input unread",
  NBF_ARTIFACT_REFUSED:
    "an upgrade artifact failed a check (size, sha256, signature, manifest); nothing was switched",
  NBF_UPGRADE_UNAVAILABLE:
    "this agent cannot upgrade itself now (no install dir or release key, no controller, or an upgrade pending)",
  NBF_TRUST_REFUSED:
    "a controller.trust was refused: the agent is not pinned to its controller, or the set would lock it out",
  NBF_ACME_FAILED:
    "the ACME server could not be reached or refused the certificate (its problem type named); the current certificate was kept",
} as const;
export type AgentErrorCode = keyof typeof AgentErrorCodes;

export class AgentError extends CodedError<AgentErrorCode> {
  override name = "AgentError";
}

export function errorCode(error: unknown): AgentErrorCode | "NBF_INTERNAL" {
  return error instanceof AgentError ? error.code : "NBF_INTERNAL";
}
