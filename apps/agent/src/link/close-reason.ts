/**
 * What an ended connection means for the next dial: the close codes of the protocol, a refused
 * upgrade, a certificate not trusted, a silent controller, turned into a line a person can act
 * on and a retry pace. Refusals only an operator can fix (credential, protocol version, another
 * agent on the same VM) are retried slowly.
 */
import { CloseCode, PROTOCOL_VERSION } from "@nbfleet/shared";
import { TlsRefusedError } from "./dial.js";
import type { LinkLogLevel } from "./log.js";
import type { UpgradeRefusal } from "./refusal.js";
import type { Presented } from "./secret.js";

/** `normal`: backoff up to maxBackoffMs; `patient`: backoff up to slowBackoffMs; `slow`: about slowBackoffMs. */
export type RetryPace = "normal" | "patient" | "slow";

export interface CloseVerdict {
  level: LinkLogLevel;
  message: string;
  pace: RetryPace;
}

/** What the link saw of a connection that ended, beyond its close code. */
export interface ConnectionEnd {
  code: number;
  reason: string;
  presented: Presented;
  welcomed: boolean;
  /** The first socket error. */
  error: Error | null;
  /** Set when the controller answered the upgrade with an HTTP error instead of a WebSocket. */
  refusal: UpgradeRefusal | null;
}

export function judgeEnd(end: ConnectionEnd, target: URL, credentialFile: string): CloseVerdict {
  const { error, refusal } = end;
  if (error instanceof TlsRefusedError) return { level: "error", pace: "patient", message: error.message };
  if (refusal) {
    const said = `${refusal.code ? `${refusal.code}: ` : ""}${refusal.message}`;
    if (isAuthRefusal(refusal)) {
      return judgeClose({
        code: CloseCode.unauthorized,
        reason: said,
        presented: end.presented,
        credentialFile,
        welcomed: false,
      });
    }
    return {
      level: "warn",
      pace: "normal",
      message: `the controller at ${target.href} refused the connection with HTTP ${refusal.status}: ${said}`,
    };
  }
  if (!end.welcomed && error && end.code === 1006) {
    return {
      level: "warn",
      pace: "normal",
      message: `cannot reach the controller at ${target.href}: ${error.message}`,
    };
  }
  return judgeClose({ ...end, credentialFile });
}

/** Whether the controller refused the secret this connection presented. */
export function refusedSecret(end: ConnectionEnd): boolean {
  return end.code === CloseCode.unauthorized || (end.refusal !== null && isAuthRefusal(end.refusal));
}

export interface CloseContext {
  code: number;
  reason: string;
  /** The secret this connection presented. */
  presented: Presented;
  credentialFile: string;
  welcomed: boolean;
}

export function judgeClose(context: CloseContext): CloseVerdict {
  const { code, reason } = context;
  const why = reason ? `: ${reason}` : "";
  switch (code) {
    case CloseCode.unauthorized:
      return {
        level: "error",
        pace: "patient",
        message:
          context.presented === "bootstrap"
            ? `the controller refused the bootstrap token${why}. A bootstrap token is good until ` +
              "this agent has connected with the credential it gets, and expires unused after a while " +
              "(NBFLEET_BOOTSTRAP_TOKEN_TTL_SEC on the controller). Issue a new one " +
              "(nbfleet vm bootstrap-token <vm>) and give it (--bootstrap-token-file or NBFLEET_BOOTSTRAP_TOKEN), " +
              `or restore the credential at ${context.credentialFile}. Retrying with backoff`
            : `the controller refused this agent's credential from ${context.credentialFile}${why}. ` +
              "The VM may have been deleted or its credential revoked. Retrying with backoff",
      };
    case CloseCode.protocolVersion: {
      const theirs = /speaks (\d+\.\d+)/.exec(reason)?.[1] ?? "another version";
      return {
        level: "error",
        pace: "slow",
        message:
          `the controller refused protocol ${PROTOCOL_VERSION} of this agent; it speaks ${theirs}${why}. ` +
          "Upgrade the agent or the controller so their major versions match. Retrying slowly",
      };
    }
    case CloseCode.replaced:
      return {
        level: "warn",
        pace: "slow",
        message: `another connection for this VM replaced this one${why}. Is a second agent running with the same credential? Retrying slowly`,
      };
    case CloseCode.invalidMessage:
    case CloseCode.policyViolation:
    case CloseCode.messageTooBig:
      return {
        level: "error",
        pace: "normal",
        message: `the controller closed the link over a message it refused (code ${code})${why}`,
      };
    case 1000:
    case 1001:
      return {
        level: "info",
        pace: "normal",
        message: `the controller closed the link (code ${code})${why}; dialing again`,
      };
    case 1013:
      return { level: "info", pace: "normal", message: `the controller asked to come back later${why}` };
    case 1006:
      return {
        level: "warn",
        pace: "normal",
        message: context.welcomed
          ? "the connection to the controller was lost"
          : "the controller could not be reached",
      };
    default:
      return { level: "warn", pace: "normal", message: `the link closed with code ${code}${why}` };
  }
}

/** Nothing to dial with (no secret, no readable CA file): only an operator can fix it. */
export function cannotDial(problem: string): CloseVerdict {
  return { level: "error", pace: "patient", message: problem };
}

export function silenceVerdict(silentMs: number, pingIntervalMs: number): CloseVerdict {
  return {
    level: "warn",
    pace: "normal",
    message:
      `no ping or message from the controller for ${formatMs(silentMs)} ` +
      `(3 × the ${formatMs(pingIntervalMs)} ping interval); dropping the connection and dialing again`,
  };
}

/** The controller speaks another major version than this agent. */
export function versionVerdict(theirs: string): CloseVerdict {
  return {
    level: "error",
    pace: "slow",
    message:
      `the controller speaks protocol ${theirs}, this agent ${PROTOCOL_VERSION}; ` +
      "upgrade the agent or the controller so their major versions match. Retrying slowly",
  };
}

function isAuthRefusal(refusal: UpgradeRefusal): boolean {
  return refusal.status === 401 || refusal.status === 403;
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${(ms / 1000).toFixed(ms % 1000 === 0 ? 0 : 1)} s` : `${ms} ms`;
}
