import { describe, expect, it } from "vitest";
import { AgentMessage, CommandMessage } from "./protocol.js";
import { compileValidator } from "./validate.js";
import { PROTOCOL_VERSION, protocolMajor } from "./version.js";

const commands = compileValidator(CommandMessage, "command");
const agentMessages = compileValidator(AgentMessage, "agent message");

describe("protocol", () => {
  it("accepts a well-formed command", () => {
    const msg = {
      v: PROTOCOL_VERSION,
      id: "c1",
      type: "command",
      name: "logs.tail",
      params: { lines: 10, source: "notebook" },
    };
    expect(commands.check(msg)).toEqual(msg);
  });
  it("refuses params that belong to another command and names the field", () => {
    const msg = {
      v: PROTOCOL_VERSION,
      id: "c1",
      type: "command",
      name: "logs.tail",
      params: { lines: 0, source: "x" },
    };
    expect(() => commands.check(msg)).toThrow(/params/);
  });
  it("refuses a plaintext password in password.set", () => {
    const msg = {
      v: PROTOCOL_VERSION,
      id: "c2",
      type: "command",
      name: "password.set",
      params: { hash: "hunter2" },
    };
    expect(commands.is(msg)).toBe(false);
  });
  it("accepts argon2 and sha1 hashes in password.set", () => {
    for (const hash of [
      "argon2:$argon2id$v=19$m=10240,t=10,p=8$abc$def",
      `sha1:0123456789ab:${"a".repeat(40)}`,
    ]) {
      const msg = { v: PROTOCOL_VERSION, id: "c3", type: "command", name: "password.set", params: { hash } };
      expect(commands.is(msg)).toBe(true);
    }
  });
  it("refuses an unknown message type", () => {
    expect(agentMessages.problems({ v: "1.0", id: "x", type: "gossip" }).length).toBeGreaterThan(0);
  });
  it("parses the protocol major", () => {
    expect(protocolMajor("1.7")).toBe(1);
    expect(protocolMajor("one")).toBeUndefined();
  });
});

describe("date-time fields", () => {
  const state = {
    notebook: {
      state: "running",
      pid: 42,
      port: 9999,
      url: "https://127.0.0.1:9999/",
      restarts: 0,
      startedAt: "2026-11-27T15:22:22.042Z",
      generation: "notebook6",
      version: "6.4.12",
      certificate: null,
      lastError: null,
    },
    health: { status: "healthy", reasons: [], checks: [], observedAt: "2026-11-27T15:22:22Z" },
  };
  const hello = {
    v: PROTOCOL_VERSION,
    id: "h1",
    type: "hello",
    agent: { version: "0.1.0", hostname: "h", os: "linux", arch: "x64" },
    capabilities: [],
    state,
  };
  it("accepts ISO timestamps", () => {
    expect(agentMessages.problems(hello)).toEqual([]);
  });
  it("refuses a timestamp that is not one and names the field", () => {
    const bad = { ...hello, state: { ...state, notebook: { ...state.notebook, startedAt: "yesterday" } } };
    expect(agentMessages.is(bad)).toBe(false);
  });
});
