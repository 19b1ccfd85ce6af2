import { PROTOCOL_VERSION } from "@nbfleet/shared";
import { describe, expect, it } from "vitest";
import { parseControllerFrame } from "./messages.js";

const frame = (value: unknown) => Buffer.from(JSON.stringify(value));
const envelope = { v: PROTOCOL_VERSION, id: "m-1" };

describe("parseControllerFrame", () => {
  it("takes a welcome and a command that match the schemas", () => {
    expect(
      parseControllerFrame(
        frame({ ...envelope, type: "welcome", vmName: "vm1", reportIntervalSec: 15 }),
        false,
      ),
    ).toMatchObject({ kind: "welcome", message: { vmName: "vm1" } });
    expect(
      parseControllerFrame(
        frame({ ...envelope, type: "command", name: "notebook.start", params: {} }),
        false,
      ),
    ).toMatchObject({ kind: "command", message: { name: "notebook.start" } });
  });

  it("names what is wrong with a frame that is no message at all", () => {
    expect(parseControllerFrame(Buffer.from("{}"), true)).toEqual({
      kind: "invalid",
      problem: "a binary frame (the protocol is JSON text)",
    });
    expect(parseControllerFrame(Buffer.from("hello"), false)).toEqual({
      kind: "invalid",
      problem: 'not JSON: "hello"',
    });
    expect(parseControllerFrame(frame([1]), false)).toEqual({
      kind: "invalid",
      problem: "not a JSON object",
    });
    expect(parseControllerFrame(frame({ v: 2, type: "welcome" }), false)).toEqual({
      kind: "invalid",
      problem: 'v: expected "MAJOR.MINOR", got 2',
    });
    expect(parseControllerFrame(frame({ ...envelope, type: "nope" }), false)).toEqual({
      kind: "invalid",
      problem: 'type: unknown message type "nope"',
    });
  });

  it("reports another major version as such", () => {
    expect(parseControllerFrame(frame({ ...envelope, v: "99.0", type: "welcome" }), false)).toEqual({
      kind: "version",
      version: "99.0",
    });
  });

  it("answers a command it cannot run when it has an id to answer to", () => {
    expect(
      parseControllerFrame(frame({ ...envelope, type: "command", name: "fly", params: {} }), false),
    ).toEqual({
      kind: "unrunnable",
      commandId: "m-1",
      code: "NBF_COMMAND_UNKNOWN",
      problem: `this agent (protocol ${PROTOCOL_VERSION}) does not know the command "fly"`,
    });
    expect(
      parseControllerFrame(frame({ ...envelope, type: "command", name: "logs.tail", params: 7 }), false),
    ).toMatchObject({ kind: "unrunnable", commandId: "m-1", code: "NBF_INVALID_INPUT" });
    expect(parseControllerFrame(frame({ v: PROTOCOL_VERSION, type: "command", name: "fly" }), false)).toEqual(
      {
        kind: "invalid",
        problem: "a command without a usable id: undefined",
      },
    );
  });
});
