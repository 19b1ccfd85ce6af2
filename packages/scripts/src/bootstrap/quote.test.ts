import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { powershellQuote, shellQuote, shellWord } from "./quote.js";

const run = promisify(execFile);

const nasty = [
  "",
  "plain",
  "it's",
  "''",
  "$(touch /tmp/nbfleet-never)",
  "`id`",
  '"double" \\back\\slash\\',
  "line one\nline two\n",
  "${HOME} $HOME * ? [a] ~ & | ; < > #",
  "\t tab and trailing space ",
  "üñíçødé ‘curly’",
];

describe("shellQuote", () => {
  it("round-trips every value through a real sh unchanged", async () => {
    for (const value of nasty) {
      const { stdout } = await run("sh", ["-c", `printf '%s' ${shellQuote(value)}`]);
      expect(stdout).toBe(value);
      const word = await run("sh", ["-c", `printf '%s' ${shellWord(value)}`]);
      expect(word.stdout).toBe(value);
    }
  });

  it("leaves plain words bare only in shellWord", () => {
    expect(shellWord("/opt/nbfleet/current/nbfleet-agent.mjs")).toBe(
      "/opt/nbfleet/current/nbfleet-agent.mjs",
    );
    expect(shellQuote("plain")).toBe("'plain'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
  });

  it("refuses a NUL byte, which no shell string can hold", () => {
    expect(() => shellQuote("a\0b")).toThrow(/NUL/);
  });
});

describe("powershellQuote", () => {
  it("doubles the ASCII and the typographic single quotes, and nothing else", () => {
    expect(powershellQuote("it's")).toBe("'it''s'");
    expect(powershellQuote("\u2018a\u2019 \u201Ab\u201B")).toBe(
      "'\u2018\u2018a\u2019\u2019 \u201A\u201Ab\u201B\u201B'",
    );
    expect(powershellQuote('$(Remove-Item C:\\) "x" `n')).toBe("'$(Remove-Item C:\\) \"x\" `n'");
  });
});
