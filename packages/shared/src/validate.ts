/** Schema checks that name the field that was wrong and what was allowed. */
import { FormatRegistry, type Static, type TSchema } from "@sinclair/typebox";
import { TypeCompiler } from "@sinclair/typebox/compiler";
import type { ValueError } from "@sinclair/typebox/errors";
import { canonicalIsoMs } from "./iso-time.js";

// TypeBox's compiler fails every value of a format it does not know; the schemas use date-time.
// Agents write their stamps with toISOString: those pass without the regex and Date.parse.
const DATE_TIME = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/;
if (!FormatRegistry.Has("date-time")) {
  FormatRegistry.Set(
    "date-time",
    (value) =>
      !Number.isNaN(canonicalIsoMs(value)) || (DATE_TIME.test(value) && !Number.isNaN(Date.parse(value))),
  );
}

export class ValidationError extends Error {
  readonly code = "NBF_INVALID_INPUT";
  constructor(
    readonly what: string,
    readonly problems: string[],
  ) {
    super(`invalid ${what}: ${problems.join("; ")}`);
  }
}

function describe(error: ValueError): string {
  const field = error.path === "" ? "(root)" : error.path.replace(/^\//, "").replaceAll("/", ".");
  const allowed = allowedValues(error.schema);
  const value = error.value === undefined ? "missing" : JSON.stringify(error.value)?.slice(0, 80);
  return `${field}: ${error.message}${allowed ? ` (allowed: ${allowed})` : ""}, got ${value}`;
}

function allowedValues(schema: TSchema): string | undefined {
  const variants = (schema as { anyOf?: Array<{ const?: unknown }> }).anyOf;
  if (!variants?.every((v) => "const" in v)) return undefined;
  return variants.map((v) => JSON.stringify(v.const)).join(", ");
}

/** Compiles once; `check` returns the value typed or throws a ValidationError. */
export function compileValidator<T extends TSchema>(schema: T, what: string) {
  const compiled = TypeCompiler.Compile(schema);
  return {
    is(value: unknown): value is Static<T> {
      return compiled.Check(value);
    },
    problems(value: unknown, max = 5): string[] {
      const out: string[] = [];
      for (const error of compiled.Errors(value)) {
        out.push(describe(error));
        if (out.length >= max) break;
      }
      return out;
    },
    check(value: unknown): Static<T> {
      if (compiled.Check(value)) return value;
      throw new ValidationError(what, this.problems(value));
    },
  };
}
