/**
 * The controller's one error catalogue: every error a caller can see has a stable code
 * `NBF_<AREA>_<PROBLEM>`, an HTTP status and a message template whose `{placeholders}` are
 * filled from the error's details. The README's "Error codes" section lists the same codes
 * (a test keeps them in step).
 */

export const ERRORS = {
  NBF_AUTH_REQUIRED: {
    status: 401,
    message: "a bearer token is required: send 'Authorization: Bearer <token>'",
  },
  NBF_AUTH_INVALID: { status: 401, message: "the bearer token is unknown or was revoked" },
  NBF_AUTH_AGENT_CREDENTIAL: {
    status: 403,
    message: "an agent credential cannot call the operator API; use an operator token (nbf_…)",
  },
  NBF_SESSION_INVALID: {
    status: 401,
    message: "the console session is unknown, expired or was signed out; sign in again",
  },
  NBF_SESSION_REQUIRED: {
    status: 401,
    message: "{action} needs the console session cookie (nbf_session); sign in with POST /v1/session",
  },
  NBF_ORIGIN_REFUSED: {
    status: 403,
    message:
      "a request authenticated by the session cookie must come from this controller's own pages: Origin {origin} is not {expected}",
  },
  NBF_FORBIDDEN: { status: 403, message: "role {role} may not {action}; it needs role {needed}" },
  NBF_INVALID_BODY: { status: 400, message: "invalid request body: {problems}" },
  NBF_INVALID_QUERY: { status: 400, message: "invalid query string: {problems}" },
  NBF_INVALID_PARAMS: { status: 400, message: "invalid path parameter: {problems}" },
  NBF_INVALID_JSON: { status: 400, message: "the request body is not valid JSON: {reason}" },
  NBF_BODY_TOO_LARGE: { status: 413, message: "the request body is larger than the limit of {limit} bytes" },
  NBF_UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    message: "content type {contentType} is not supported; send JSON",
  },
  NBF_ROUTE_NOT_FOUND: { status: 404, message: "no route {method} {url}" },
  NBF_VM_NOT_FOUND: { status: 404, message: "no VM named {name}" },
  NBF_VM_EXISTS: { status: 409, message: "a VM named {name} already exists" },
  NBF_VM_BUSY: { status: 409, message: "VM {name} is {state}; {action} is not possible now" },
  NBF_PROVIDER_UNKNOWN: {
    status: 400,
    message: "provider {provider} is not configured; this controller runs provider {available}",
  },
  NBF_PROVIDER_FAILED: { status: 502, message: "provider {provider} failed to {action} VM {name}: {reason}" },
  NBF_PROVIDER_NAME_INVALID: {
    status: 400,
    message: "provider {provider} cannot make a machine named {name}: {reason}",
  },
  NBF_PROVIDER_CERTIFICATE_UNSUPPORTED: {
    status: 400,
    message: "provider {provider} cannot give VM {name} an ACME certificate this way: {reason}",
  },
  NBF_AGENT_OFFLINE: {
    status: 409,
    message: "the agent of VM {name} is not connected (last seen {lastSeenAt}); omit ifOffline=fail to queue",
  },
  NBF_WEBSOCKET_REQUIRED: {
    status: 426,
    message: "GET {url} is a WebSocket endpoint; connect with a WebSocket client (Upgrade: websocket)",
  },
  NBF_AGENT_NOT_CONNECTED: {
    status: 409,
    message: "the agent of VM {name} is not connected (last seen {lastSeenAt}); {what} needs a live agent",
  },
  NBF_AGENT_UNSUPPORTED: {
    status: 409,
    message: "the agent of VM {name} does not offer {capability} (it offers: {offered}); upgrade the agent",
  },
  NBF_AGENT_NO_ANSWER: {
    status: 504,
    message: "the agent of VM {name} did not answer {what} within {seconds} s",
  },
  NBF_TERMINAL_LIMIT: {
    status: 409,
    message:
      "VM {name} already has {count} terminal sessions (limit {limit}); end one, or reattach with ?session=<id>",
  },
  NBF_TERMINAL_SESSION_NOT_FOUND: {
    status: 404,
    message:
      "no live terminal session {session} on VM {name} for this token (it ended, or another token opened it)",
  },
  NBF_TERMINAL_OPEN_FAILED: {
    status: 502,
    message: "the agent of VM {name} could not start the {what}: {reason}",
  },
  NBF_LOGS_FAILED: {
    status: 502,
    message: "the agent of VM {name} could not read the {source} log: {reason}",
  },
  NBF_COMMAND_NOT_FOUND: { status: 404, message: "no command with id {id}" },
  NBF_TOKEN_NOT_FOUND: { status: 404, message: "no token with id {id}" },
  NBF_TOKEN_LAST_ADMIN: {
    status: 409,
    message: "token {id} is the last admin token; create another admin first",
  },
  NBF_SIGN_IN_THROTTLED: {
    status: 429,
    message: "too many failed sign-ins from {address}; try again in {retryAfterSec} s",
  },
  NBF_SESSION_NOT_FOUND: { status: 404, message: "no live console session with id {id}" },
  NBF_OPERATION_NOT_FOUND: { status: 404, message: "no operation with id {id}" },
  NBF_FLEET_NOT_EMPTY: {
    status: 409,
    message:
      "the fleet still has {count} machine(s), {example} among them; delete them first (nbfleet vm rm NAME --yes), then tear the fleet down",
  },
  NBF_FLEET_NO_TEARDOWN: {
    status: 409,
    message: "provider {provider} keeps nothing shared between machines: there is nothing to tear down",
  },
  NBF_OPERATION_NO_TARGETS: {
    status: 400,
    message: "the selector {selector} matches no VM; check names, labels and health with nbfleet vm ls",
  },
  NBF_OPERATION_FINISHED: { status: 409, message: "operation {id} is already {state}; nothing to cancel" },
  NBF_OPERATION_INVALID: { status: 400, message: "invalid operation: {problem}" },
  NBF_SELECTOR_INVALID: {
    status: 400,
    message:
      "invalid label expression {expression}: {problem} (use key=value, key!=value, key or !key, comma-separated)",
  },
  NBF_ARTIFACT_NOT_FOUND: {
    status: 404,
    message: "no agent artifact with version {version}; nbfleet agent artifacts lists the published ones",
  },
  NBF_ARTIFACT_INVALID: { status: 400, message: "the uploaded agent artifact was refused: {problem}" },
  NBF_ARTIFACT_VERSION_EXISTS: {
    status: 409,
    message:
      "agent artifact version {version} is already published with other bytes (sha256 {existing}); build and publish a new version",
  },
  NBF_CURSOR_INVALID: { status: 400, message: "cursor {cursor} is not one this API returned" },
  NBF_CONFIG_INVALID: { status: 500, message: "invalid controller configuration ({source}): {problems}" },
  NBF_DATABASE_UNAVAILABLE: {
    status: 503,
    message:
      "PostgreSQL at {target} is unavailable: {reason}; the controller keeps retrying (GET /healthz shows when it is back)",
  },
  NBF_INTERNAL: { status: 500, message: "internal error: {reason}" },
} as const satisfies Record<string, { status: number; message: string }>;

export type ErrorCode = keyof typeof ERRORS;
export const ERROR_CODES = Object.keys(ERRORS) as ErrorCode[];

export type ErrorDetails = Record<string, unknown>;

export class NbfError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    readonly details: ErrorDetails = {},
  ) {
    super(formatMessage(ERRORS[code].message, details));
    this.name = "NbfError";
    this.status = ERRORS[code].status;
  }

  toJSON(): { error: { code: ErrorCode; message: string; details: ErrorDetails } } {
    return { error: { code: this.code, message: this.message, details: this.details } };
  }
}

export function formatMessage(template: string, details: ErrorDetails): string {
  return template.replace(/\{(\w+)\}/g, (whole, key: string) => {
    const value = details[key];
    if (value === undefined) return whole;
    return typeof value === "string" ? value : JSON.stringify(value);
  });
}

export function isNbfError(error: unknown): error is NbfError {
  return error instanceof NbfError;
}
