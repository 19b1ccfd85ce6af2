/**
 * Frames on the link. From the controller: checked against the shared schemas before anything
 * acts on them; a command the agent cannot run (unknown name, bad params) is still answered —
 * with a failed result naming the problem — as long as it carries an id to answer to. To the
 * controller: every frame carries the protocol version and an id of its own.
 */
import { randomUUID } from "node:crypto";
import {
  COMMAND_NAMES,
  CONTROLLER_STREAM_TYPES,
  CommandMessage,
  ControllerStreamMessage,
  PROTOCOL_VERSION,
  WelcomeMessage,
  compileValidator,
} from "@nbfleet/shared";
import { type EnvelopeProblem, type RawFrame, clip as clipJson, readEnvelope } from "@nbfleet/shared/frames";
import WebSocket from "ws";

const welcomeValidator = compileValidator(WelcomeMessage, "welcome message");
const commandValidator = compileValidator(CommandMessage, "command message");
const streamValidator = compileValidator(ControllerStreamMessage, "stream message");
const MAX_ID = 128;

export type ControllerFrame =
  | { kind: "welcome"; message: WelcomeMessage }
  | { kind: "command"; message: CommandMessage }
  | { kind: "stream"; message: ControllerStreamMessage }
  | {
      kind: "unrunnable";
      commandId: string;
      code: "NBF_COMMAND_UNKNOWN" | "NBF_INVALID_INPUT";
      problem: string;
    }
  | { kind: "version"; version: string }
  | { kind: "invalid"; problem: string };

export function parseControllerFrame(data: RawFrame, isBinary: boolean): ControllerFrame {
  const envelope = readEnvelope(data, isBinary);
  if (!envelope.ok) return envelopeProblem(envelope);
  const { value, type } = envelope;
  const { id, name } = value;
  if (type === "welcome") {
    return welcomeValidator.is(value)
      ? { kind: "welcome", message: value }
      : { kind: "invalid", problem: welcomeValidator.problems(value, 2).join("; ") };
  }
  if (type === "command") {
    if (commandValidator.is(value)) return { kind: "command", message: value };
    if (typeof id !== "string" || id.length === 0 || id.length > MAX_ID) {
      return { kind: "invalid", problem: `a command without a usable id: ${clip(id)}` };
    }
    const known = typeof name === "string" && (COMMAND_NAMES as string[]).includes(name);
    return known
      ? {
          kind: "unrunnable",
          commandId: id,
          code: "NBF_INVALID_INPUT",
          problem: `${String(name)}: ${commandValidator.problems(value, 3).join("; ")}`,
        }
      : {
          kind: "unrunnable",
          commandId: id,
          code: "NBF_COMMAND_UNKNOWN",
          problem: `this agent (protocol ${PROTOCOL_VERSION}) does not know the command ${clip(name)}`,
        };
  }
  if ((CONTROLLER_STREAM_TYPES as readonly unknown[]).includes(type)) {
    return streamValidator.is(value)
      ? { kind: "stream", message: value }
      : { kind: "invalid", problem: `${String(type)}: ${streamValidator.problems(value, 2).join("; ")}` };
  }
  return { kind: "invalid", problem: `type: unknown message type ${clip(type)}` };
}

/** Sends one frame on `ws`; false when it is not open. */
export function sendFrame(ws: WebSocket, body: Record<string, unknown>): boolean {
  if (ws.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify({ v: PROTOCOL_VERSION, id: randomUUID(), ...body }));
  return true;
}

function envelopeProblem(refused: EnvelopeProblem): ControllerFrame {
  switch (refused.problem) {
    case "binary":
      return { kind: "invalid", problem: "a binary frame (the protocol is JSON text)" };
    case "not-json":
      return { kind: "invalid", problem: `not JSON: ${JSON.stringify(refused.text.slice(0, 60))}` };
    case "not-object":
      return { kind: "invalid", problem: "not a JSON object" };
    case "bad-version":
      return { kind: "invalid", problem: `v: expected "MAJOR.MINOR", got ${clip(refused.v)}` };
    case "other-major":
      return { kind: "version", version: refused.v };
  }
}

function clip(value: unknown): string {
  return clipJson(value, 60);
}
