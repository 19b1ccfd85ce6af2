/**
 * The client side of `GET /v1/vms/{name}/shell`: binary frames are `<channel byte><bytes>`
 * (0 stdin from the client; 1 stdout, 2 stderr to it), text frames are JSON control messages
 * (TerminalClientFrame in, TerminalServerFrame out; see packages/shared/src/terminal.ts).
 */
import {
  TerminalChannel,
  TerminalClientFrame,
  type TerminalServerFrame,
  compileValidator,
} from "@nbfleet/shared";
import type WebSocket from "ws";

const controlFrame = compileValidator(TerminalClientFrame, "terminal control frame");

export type ClientInput =
  | { kind: "stdin"; data: Buffer }
  | { kind: "control"; frame: TerminalClientFrame }
  | { kind: "invalid"; reason: string };

export function parseClientFrame(raw: WebSocket.RawData, isBinary: boolean): ClientInput {
  const data = Array.isArray(raw) ? Buffer.concat(raw) : Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
  if (isBinary) {
    if (data[0] !== TerminalChannel.stdin) {
      return {
        kind: "invalid",
        reason: `binary frames from a client must start with channel 0 (stdin), got ${data[0] ?? "nothing"}`,
      };
    }
    return { kind: "stdin", data: data.subarray(1) };
  }
  let value: unknown;
  try {
    value = JSON.parse(data.toString("utf8"));
  } catch {
    return { kind: "invalid", reason: "a text frame must be a JSON control message" };
  }
  if (!controlFrame.is(value)) return { kind: "invalid", reason: controlFrame.problems(value, 1).join("; ") };
  return { kind: "control", frame: value };
}

export function outputFrame(channel: TerminalChannel, data: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(data.length + 1);
  frame[0] = channel;
  data.copy(frame, 1);
  return frame;
}

export function controlMessage(frame: TerminalServerFrame): string {
  return JSON.stringify(frame);
}
