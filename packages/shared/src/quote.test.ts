import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { powershellQuote, powershellWord, shellQuote, shellWord } from "./quote.js";

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
  "$env:PATH $(Remove-Item C:\\) @(1,2) `n `$x --% a,b",
  "C:\\Program Data\\nbfleet\\venv",
  "\u2018\u2019\u201A\u201B '' \u2019\u2019",
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
    expect(shellWord("--no-install-recommends")).toBe("--no-install-recommends");
    expect(shellWord("")).toBe("''");
    expect(shellQuote("plain")).toBe("'plain'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
  });

  it("refuses a NUL byte, which no shell string can hold", () => {
    expect(() => shellQuote("a\0b")).toThrow(/NUL/);
    expect(() => powershellQuote("a\0b")).toThrow(/NUL/);
  });
});

/**
 * How PowerShell reads a single-quoted (verbatim) string, from about_Quoting_Rules
 * (learn.microsoft.com/powershell/module/microsoft.powershell.core/about/about_quoting_rules):
 * nothing inside is substituted or evaluated, two consecutive single quotes stand for one,
 * and the typographic single quotes U+2018–U+201B count as single quotes. Returns the value
 * and where the string ended. pwsh is not installed on the test machines, so this stands in.
 */
function readVerbatimString(text: string, start = 0): { value: string; end: number } {
  const isQuote = (ch: string | undefined) => ch !== undefined && "'\u2018\u2019\u201A\u201B".includes(ch);
  if (!isQuote(text[start])) throw new Error(`no string starts at ${start}`);
  let value = "";
  for (let i = start + 1; i < text.length; i++) {
    const ch = text[i]!;
    if (!isQuote(ch)) value += ch;
    else if (isQuote(text[i + 1])) value += text[++i];
    else return { value, end: i + 1 };
  }
  throw new Error("the string never ends");
}

describe("powershellQuote", () => {
  it("is one verbatim string that PowerShell reads back as the value, whatever it holds", () => {
    for (const value of nasty) {
      const quoted = powershellQuote(value);
      const { value: read, end } = readVerbatimString(quoted);
      expect(read).toBe(value);
      expect(end).toBe(quoted.length);
    }
  });

  it("leaves $env:X, $(...), backticks, double quotes and spaces as they are: they cannot expand", () => {
    const value = 'pip "$env:USERPROFILE" $(Get-Date) `whoami` a  b';
    expect(powershellQuote(value)).toBe(`'${value}'`);
  });

  it("doubles the ASCII and the typographic single quotes, and nothing else", () => {
    expect(powershellQuote("it's")).toBe("'it''s'");
    expect(powershellQuote("\u2018a\u2019 \u201Ab\u201B")).toBe(
      "'\u2018\u2018a\u2019\u2019 \u201A\u201Ab\u201B\u201B'",
    );
  });

  it("leaves only words PowerShell passes on literally bare in powershellWord", () => {
    expect(powershellWord("-3")).toBe("-3");
    expect(powershellWord("C:\\nbfleet\\venv\\Scripts\\pip.exe")).toBe("C:\\nbfleet\\venv\\Scripts\\pip.exe");
    for (const word of ["", "a b", "a,b", "@args", "--%", "$x", "x=1", "`n", "(1)", "a;b", "a&b"]) {
      expect(powershellWord(word)).toBe(powershellQuote(word));
    }
  });
});
