/**
 * Reading protocol frames off the WebSocket, in one place for every peer: the text of a frame,
 * its envelope (a JSON object whose `v` has this protocol's major), then — for frames from an
 * agent — the schema of its `type`. Each failure is a named problem with the close code the
 * controller ends the connection with and the reason it gives.
 * Node-only (frames are Buffers): imported as `@nbfleet/shared/frames`.
 */
import {
  AckMessage,
  type AgentMessage,
  CloseCode,
  EventMessage,
  HelloMessage,
  LogsDataMessage,
  LogsEndMessage,
  ProgressMessage,
  PtyExitMessage,
  PtyInputFlowMessage,
  PtyOpenedMessage,
  PtyOutputMessage,
  ResultMessage,
  StateMessage,
} from "./protocol.js";
import { compileValidator } from "./validate.js";
import { PROTOCOL_MAJOR, PROTOCOL_VERSION, protocolMajor } from "./version.js";

/** What `ws` hands a message listener. */
export type RawFrame = Buffer | ArrayBuffer | Buffer[];

export function frameText(data: RawFrame): string {
  if (Buffer.isBuffer(data)) return data.toString("utf8");
  return (Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data)).toString("utf8");
}

/** A frame that is a JSON object of this protocol's major version, its type not yet checked. */
export interface Envelope {
  value: Record<string, unknown>;
  type: unknown;
}

export type EnvelopeProblem =
  | { problem: "binary" }
  | { problem: "not-json"; text: string }
  | { problem: "not-object" }
  | { problem: "bad-version"; v: unknown }
  | { problem: "other-major"; v: string };

export function readEnvelope(
  data: RawFrame,
  isBinary: boolean,
): ({ ok: true } & Envelope) | ({ ok: false } & EnvelopeProblem) {
  if (isBinary) return { ok: false, problem: "binary" };
  const text = frameText(data);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, problem: "not-json", text };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, problem: "not-object" };
  }
  const { v, type } = value as Record<string, unknown>;
  const major = typeof v === "string" ? protocolMajor(v) : undefined;
  if (major === undefined) return { ok: false, problem: "bad-version", v };
  if (major !== PROTOCOL_MAJOR) return { ok: false, problem: "other-major", v: v as string };
  return { ok: true, value: value as Record<string, unknown>, type };
}

const agentValidators = {
  hello: compileValidator(HelloMessage, "hello message"),
  state: compileValidator(StateMessage, "state message"),
  event: compileValidator(EventMessage, "event message"),
  ack: compileValidator(AckMessage, "ack message"),
  progress: compileValidator(ProgressMessage, "progress message"),
  result: compileValidator(ResultMessage, "result message"),
  "pty.opened": compileValidator(PtyOpenedMessage, "pty.opened message"),
  "pty.output": compileValidator(PtyOutputMessage, "pty.output message"),
  "pty.inputFlow": compileValidator(PtyInputFlowMessage, "pty.inputFlow message"),
  "pty.exit": compileValidator(PtyExitMessage, "pty.exit message"),
  "logs.data": compileValidator(LogsDataMessage, "logs.data message"),
  "logs.end": compileValidator(LogsEndMessage, "logs.end message"),
} as const;

export type AgentFrameProblem = EnvelopeProblem["problem"] | "unknown-type" | "invalid";

/** Why a frame is refused, and the close code and reason the controller ends the connection with. */
export interface AgentFrameRefusal {
  problem: AgentFrameProblem;
  code: number;
  reason: string;
}

export type ParsedAgentFrame = { ok: true; message: AgentMessage } | ({ ok: false } & AgentFrameRefusal);

/** A frame from an agent, checked whole; the reasons are those the controller closes with. */
export function parseAgentFrame(data: RawFrame, isBinary: boolean): ParsedAgentFrame {
  const envelope = readEnvelope(data, isBinary);
  if (!envelope.ok) return { ok: false, ...envelopeRefusal(envelope) };
  const { value, type } = envelope;
  // Own keys only: a type such as "toString" must be unknown, not Object.prototype's method.
  const validator =
    typeof type === "string" && Object.hasOwn(agentValidators, type)
      ? agentValidators[type as keyof typeof agentValidators]
      : undefined;
  if (!validator) {
    return {
      ok: false,
      problem: "unknown-type",
      code: CloseCode.invalidMessage,
      reason: `type: unknown message type ${clip(type)}`,
    };
  }
  if (!validator.is(value)) {
    return {
      ok: false,
      problem: "invalid",
      code: CloseCode.invalidMessage,
      reason: validator.problems(value, 1)[0] ?? "invalid",
    };
  }
  return { ok: true, message: value as AgentMessage };
}

function envelopeRefusal(refused: EnvelopeProblem): AgentFrameRefusal {
  const { problem } = refused;
  switch (refused.problem) {
    case "binary":
      return { problem, code: CloseCode.policyViolation, reason: "binary frames are not accepted" };
    case "not-json":
      return { problem, code: CloseCode.invalidMessage, reason: "the frame is not JSON" };
    case "not-object":
      return { problem, code: CloseCode.invalidMessage, reason: "a message must be a JSON object" };
    case "bad-version":
      return {
        problem,
        code: CloseCode.invalidMessage,
        reason: `v: expected "MAJOR.MINOR", got ${clip(refused.v)}`,
      };
    case "other-major":
      return {
        problem,
        code: CloseCode.protocolVersion,
        reason: `protocol ${refused.v} is not supported; this controller speaks ${PROTOCOL_VERSION}`,
      };
  }
}

/** A value as JSON, cut short for a close reason or a problem message. */
export function clip(value: unknown, chars = 40): string {
  return (JSON.stringify(value) ?? "undefined").slice(0, chars);
}
