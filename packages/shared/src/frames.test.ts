import { describe, expect, it } from "vitest";
import { parseAgentFrame, readEnvelope } from "./frames.js";
import { CloseCode } from "./protocol.js";
import { PROTOCOL_VERSION } from "./version.js";

const frame = (value: unknown) => Buffer.from(JSON.stringify(value));
const ack = { v: PROTOCOL_VERSION, id: "m1", type: "ack", commandId: "c1" };

describe("frames", () => {
  it("reads an envelope from a Buffer, an ArrayBuffer or fragments alike", () => {
    const whole = frame(ack);
    const arrayBuffer = whole.buffer.slice(whole.byteOffset, whole.byteOffset + whole.byteLength);
    for (const data of [whole, arrayBuffer, [whole.subarray(0, 5), whole.subarray(5)]]) {
      expect(readEnvelope(data, false)).toEqual({ ok: true, value: ack, type: "ack" });
    }
  });

  it("names what is wrong with a frame before its type is looked at", () => {
    expect(readEnvelope(frame(ack), true)).toEqual({ ok: false, problem: "binary" });
    expect(readEnvelope(Buffer.from("{nope"), false)).toEqual({
      ok: false,
      problem: "not-json",
      text: "{nope",
    });
    expect(readEnvelope(frame([ack]), false)).toEqual({ ok: false, problem: "not-object" });
    expect(readEnvelope(frame({ ...ack, v: 1 }), false)).toEqual({ ok: false, problem: "bad-version", v: 1 });
    expect(readEnvelope(frame({ ...ack, v: "9.0" }), false)).toEqual({
      ok: false,
      problem: "other-major",
      v: "9.0",
    });
  });

  it("parses an agent message, and refuses a bad one with the gateway's close code and reason", () => {
    expect(parseAgentFrame(frame(ack), false)).toEqual({ ok: true, message: ack });
    const refusal = (value: unknown, isBinary = false) => {
      const parsed = parseAgentFrame(Buffer.isBuffer(value) ? value : frame(value), isBinary);
      return parsed.ok ? parsed : [parsed.problem, parsed.code, parsed.reason];
    };
    expect(refusal(ack, true)).toEqual([
      "binary",
      CloseCode.policyViolation,
      "binary frames are not accepted",
    ]);
    expect(refusal(Buffer.from("{"))).toEqual([
      "not-json",
      CloseCode.invalidMessage,
      "the frame is not JSON",
    ]);
    expect(refusal({ ...ack, v: "9.0" })).toEqual([
      "other-major",
      CloseCode.protocolVersion,
      `protocol 9.0 is not supported; this controller speaks ${PROTOCOL_VERSION}`,
    ]);
    expect(refusal({ ...ack, type: "command" })).toEqual([
      "unknown-type",
      CloseCode.invalidMessage,
      'type: unknown message type "command"',
    ]);
    for (const inherited of ["toString", "constructor", "__proto__", "hasOwnProperty"]) {
      expect(refusal({ ...ack, type: inherited })).toEqual([
        "unknown-type",
        CloseCode.invalidMessage,
        `type: unknown message type "${inherited}"`,
      ]);
    }
    expect(refusal({ ...ack, commandId: "" })).toEqual([
      "invalid",
      CloseCode.invalidMessage,
      expect.any(String),
    ]);
  });
});
