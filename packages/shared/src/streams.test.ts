import { describe, expect, it } from "vitest";
import { AgentMessage, ControllerMessage, ControllerStreamMessage, PTY_CHUNK_BYTES } from "./protocol.js";
import { TerminalClientFrame } from "./terminal.js";
import { compileValidator } from "./validate.js";
import { PROTOCOL_VERSION } from "./version.js";

const controller = compileValidator(ControllerMessage, "controller message");
const streams = compileValidator(ControllerStreamMessage, "stream message");
const agent = compileValidator(AgentMessage, "agent message");
const clientFrames = compileValidator(TerminalClientFrame, "terminal frame");
const envelope = { v: PROTOCOL_VERSION, id: "m1" };

describe("stream messages", () => {
  it("accepts a pty.open for a shell and for a command, and refuses a zero-sized terminal", () => {
    const open = { ...envelope, type: "pty.open", session: "trm_1", tty: true, cols: 80, rows: 24 };
    expect(controller.problems(open)).toEqual([]);
    expect(streams.is({ ...open, tty: false, command: "exit 3" })).toBe(true);
    expect(streams.problems({ ...open, cols: 0 }).join()).toMatch(/cols/);
  });

  it("carries bytes as base64 up to one chunk and refuses anything else", () => {
    const input = (data: string) => ({ ...envelope, type: "pty.input", session: "s", data });
    expect(streams.is(input(Buffer.from("ls -la\r").toString("base64")))).toBe(true);
    expect(streams.is(input(Buffer.alloc(PTY_CHUNK_BYTES).toString("base64")))).toBe(true);
    expect(streams.is(input(Buffer.alloc(PTY_CHUNK_BYTES + 3).toString("base64")))).toBe(false);
    expect(streams.is(input("not base64!"))).toBe(false);
  });

  it("accepts the agent's answers, with stderr only named, and an exit that never started", () => {
    const output = { ...envelope, type: "pty.output", session: "s", data: "aGk=", stream: "stderr" };
    expect(agent.problems(output)).toEqual([]);
    expect(agent.is({ ...output, stream: "stdin" })).toBe(false);
    const failed = {
      ...envelope,
      type: "pty.exit",
      session: "s",
      exitCode: null,
      signal: null,
      error: { code: "NBF_PTY_UNAVAILABLE", message: "no node-pty" },
    };
    expect(agent.problems(failed)).toEqual([]);
    expect(agent.problems({ ...envelope, type: "logs.data", stream: "l1", lines: ["a", "b"] })).toEqual([]);
    expect(agent.is({ ...envelope, type: "logs.data", stream: "l1", lines: ["x".repeat(20_000)] })).toBe(
      false,
    );
  });

  it("reads client frames strictly", () => {
    expect(clientFrames.is({ type: "resize", cols: 120, rows: 40 })).toBe(true);
    expect(clientFrames.is({ type: "resize", cols: 120 })).toBe(false);
    expect(clientFrames.is({ type: "eof", extra: 1 })).toBe(false);
  });
});
