import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ERRORS, ERROR_CODES, NbfError, formatMessage } from "./errors.js";

const here = new URL(".", import.meta.url).pathname;

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return name.endsWith(".ts") && !name.endsWith(".test.ts") && name !== "errors.ts" ? [path] : [];
  });
}

describe("error catalogue", () => {
  it("lists the same codes and statuses as the README's Error codes section", () => {
    const readme = readFileSync(join(here, "..", "README.md"), "utf8");
    const section = readme.split(/^## Error codes$/m)[1]?.split(/^## /m)[0] ?? "";
    const rows = [...section.matchAll(/^\| `(NBF_[A-Z0-9_]+)` \| (\d{3}) \|/gm)].map((m) => [
      m[1],
      Number(m[2]),
    ]);
    expect(rows).toEqual(ERROR_CODES.map((code) => [code, ERRORS[code].status]));
  });

  it("uses every code somewhere outside the catalogue", () => {
    const text = sources(here)
      .map((path) => readFileSync(path, "utf8"))
      .join("\n");
    const unused = ERROR_CODES.filter((code) => !text.includes(`"${code}"`));
    expect(unused).toEqual([]);
  });

  it("fills message templates from details and serialises to the API's error shape", () => {
    const error = new NbfError("NBF_VM_NOT_FOUND", { name: "ghost" });
    expect(error.status).toBe(404);
    expect(error.toJSON()).toEqual({
      error: { code: "NBF_VM_NOT_FOUND", message: "no VM named ghost", details: { name: "ghost" } },
    });
    expect(formatMessage("{a} and {b}", { a: 1 })).toBe("1 and {b}");
  });
});
