import { InvalidArgumentError } from "commander";
import { describe, expect, it } from "vitest";
import { collect, integerIn, oneOf } from "./cli-parse.js";

describe("flag parsers", () => {
  it("integerIn takes integers in the range and names the flag, the range and the value otherwise", () => {
    const port = integerIn("--port", 1, 65535);
    expect(port("8888")).toBe(8888);
    for (const raw of ["0", "65536", "1.5", "-1", "x", ""]) {
      expect(() => port(raw)).toThrow(InvalidArgumentError);
    }
    expect(() => port("0")).toThrow("--port must be an integer from 1 to 65535, got '0'");
  });

  it("oneOf takes only the allowed values", () => {
    const source = oneOf("--source", ["notebook", "agent"] as const);
    expect(source("agent")).toBe("agent");
    expect(() => source("kernel")).toThrow("--source must be one of notebook, agent, got 'kernel'");
  });

  it("collect gathers a repeatable flag in order", () => {
    expect(collect("b", collect("a"))).toEqual(["a", "b"]);
  });
});
