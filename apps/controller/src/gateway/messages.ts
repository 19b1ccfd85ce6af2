/**
 * Parsing and checking of agent frames: JSON, protocol major, then the schema of the
 * message's type. Each failure names the close code the connection ends with.
 */
import {
  AckMessage,
  type AgentMessage,
  CloseCode,
  EventMessage,
  HelloMessage,
  LogsDataMessage,
  LogsEndMessage,
  PROTOCOL_MAJOR,
  PROTOCOL_VERSION,
  ProgressMessage,
  PtyExitMessage,
  PtyOpenedMessage,
  PtyOutputMessage,
  ResultMessage,
  StateMessage,
  compileValidator,
  protocolMajor,
} from "@nbfleet/shared";

const validators = {
  hello: compileValidator(HelloMessage, "hello message"),
  state: compileValidator(StateMessage, "state message"),
  event: compileValidator(EventMessage, "event message"),
  ack: compileValidator(AckMessage, "ack message"),
  progress: compileValidator(ProgressMessage, "progress message"),
  result: compileValidator(ResultMessage, "result message"),
  "pty.opened": compileValidator(PtyOpenedMessage, "pty.opened message"),
  "pty.output": compileValidator(PtyOutputMessage, "pty.output message"),
  "pty.exit": compileValidator(PtyExitMessage, "pty.exit message"),
  "logs.data": compileValidator(LogsDataMessage, "logs.data message"),
  "logs.end": compileValidator(LogsEndMessage, "logs.end message"),
} as const;

export type Parsed = { ok: true; message: AgentMessage } | { ok: false; code: number; reason: string };

export function parseAgentFrame(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): Parsed {
  if (isBinary)
    return { ok: false, code: CloseCode.policyViolation, reason: "binary frames are not accepted" };
  let value: unknown;
  try {
    value = JSON.parse(
      Buffer.isBuffer(data) ? data.toString("utf8") : Buffer.from(data as ArrayBuffer).toString(),
    );
  } catch {
    return { ok: false, code: CloseCode.invalidMessage, reason: "the frame is not JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, code: CloseCode.invalidMessage, reason: "a message must be a JSON object" };
  }
  const { v, type } = value as { v?: unknown; type?: unknown };
  const major = typeof v === "string" ? protocolMajor(v) : undefined;
  if (major === undefined) {
    return { ok: false, code: CloseCode.invalidMessage, reason: `v: expected "MAJOR.MINOR", got ${clip(v)}` };
  }
  if (major !== PROTOCOL_MAJOR) {
    return {
      ok: false,
      code: CloseCode.protocolVersion,
      reason: `protocol ${String(v)} is not supported; this controller speaks ${PROTOCOL_VERSION}`,
    };
  }
  const validator = typeof type === "string" ? validators[type as keyof typeof validators] : undefined;
  if (!validator) {
    return { ok: false, code: CloseCode.invalidMessage, reason: `type: unknown message type ${clip(type)}` };
  }
  if (!validator.is(value)) {
    return {
      ok: false,
      code: CloseCode.invalidMessage,
      reason: validator.problems(value, 1)[0] ?? "invalid",
    };
  }
  return { ok: true, message: value as AgentMessage };
}

function clip(value: unknown): string {
  return (JSON.stringify(value) ?? "undefined").slice(0, 40);
}
