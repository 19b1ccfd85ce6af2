import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { pyBool, pyInt, pyList, pyStr, pyValue } from "./python-literal.js";

/** Deterministic PRNG so a failure reproduces. */
function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NASTY = [
  "'",
  '"',
  "\\",
  "\n",
  "\r",
  "\0",
  "\t",
  "\u2028",
  "\u2029",
  "\u0085",
  "\x0b",
  "\x0c",
  "\x1b",
  "\x7f",
  "\u00e9",
  "\u00ff",
  "\ufeff",
  "\ud83d\ude00",
  "\u{10ffff}",
  "#",
  "{",
  "%s",
  "'''",
  '"""',
  "\\x41",
  "\\N{BULLET}",
  "); import os; os.system('id') #",
];

function randomString(random: () => number): string {
  let out = "";
  const length = Math.floor(random() * 24);
  for (let i = 0; i < length; i++) {
    const pick = random();
    if (pick < 0.45) out += NASTY[Math.floor(random() * NASTY.length)];
    else if (pick < 0.75) out += String.fromCharCode(0x20 + Math.floor(random() * 95));
    else if (pick < 0.9) out += String.fromCharCode(Math.floor(random() * 0x100));
    else out += String.fromCodePoint(Math.floor(random() * 0x10ffff));
  }
  return out;
}

function isWellFormed(value: string): boolean {
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(value);
}

describe("pyStr", () => {
  it("emits single-quoted printable ASCII only", () => {
    expect(pyStr("plain text")).toBe("'plain text'");
    expect(pyStr("it's a \\ path")).toBe("'it\\'s a \\\\ path'");
    expect(pyStr("a\nb\r\0")).toBe("'a\\x0ab\\x0d\\x00'");
    expect(pyStr("\u2028\u00e9\ud83d\ude00")).toBe("'\\u2028\\xe9\\U0001f600'");
  });

  it("round-trips nasty strings through the real /usr/bin/python3, code unit for code unit", () => {
    const random = mulberry32(20261127);
    const values = [...NASTY, NASTY.join(""), "", ...Array.from({ length: 600 }, () => randomString(random))];
    // Each literal on its own line of real Python source: a literal that broke out would either
    // fail to compile or change the values Python ends up with.
    const program = [
      "import json, sys",
      "values = []",
      ...values.map((value) => `values.append(${pyStr(value)})`),
      "print(json.dumps([[v.encode('utf-16-le', 'surrogatepass').hex(), v.encode('utf-8', 'surrogatepass').hex()] for v in values]))",
    ].join("\n");
    for (const value of values) expect(pyStr(value)).toMatch(/^'[\x20-\x7e]*'$/);
    const out = execFileSync("/usr/bin/python3", ["-c", program], {
      encoding: "utf8",
      maxBuffer: 64 * 1024 * 1024,
    });
    const seen = JSON.parse(out) as [string, string][];
    expect(seen).toHaveLength(values.length);
    values.forEach((value, index) => {
      const [utf16, utf8] = seen[index]!;
      expect(utf16, JSON.stringify(value)).toBe(Buffer.from(value, "utf16le").toString("hex"));
      if (isWellFormed(value))
        expect(utf8, JSON.stringify(value)).toBe(Buffer.from(value, "utf8").toString("hex"));
    });
  });
});

describe("pyInt, pyBool, pyList, pyValue", () => {
  it("renders Python ints, bools, None and lists", () => {
    expect(pyInt(9999)).toBe("9999");
    expect(pyInt(-1)).toBe("-1");
    expect(pyBool(true)).toBe("True");
    expect(pyBool(false)).toBe("False");
    expect(pyValue(null)).toBe("None");
    expect(pyList(["a'", 1, false, null, ["x"]])).toBe("['a\\'', 1, False, None, ['x']]");
  });

  it("refuses numbers that are not safe integers", () => {
    for (const bad of [1.5, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60]) {
      expect(() => pyInt(bad)).toThrow(/not an integer/);
    }
  });
});
