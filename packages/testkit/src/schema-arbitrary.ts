/**
 * fast-check arbitraries from the routes' TypeBox (JSON Schema) schemas, for fuzzing the API:
 * `validish` draws values that mostly satisfy a schema (within its types, ranges, patterns and
 * required fields; `hints` put real names where a field is called so), `hostile` draws values
 * built to break it — wrong types, values just out of range, unknown and prototype-polluting
 * fields, missing required ones, oversized and control-character strings.
 */
import fc from "fast-check";

type Schema = Record<string, unknown>;
/** Known-good values by field name (e.g. existing VM names for `name`). */
export type Hints = Record<string, readonly unknown[]>;

const NASTY_STRINGS = [
  "",
  " ",
  "__proto__",
  "constructor",
  "../../etc/passwd",
  "%00",
  "\u0000",
  "\r\nX-Injected: 1",
  "' OR 1=1 --",
  '"; DROP TABLE vms; --',
  "<script>alert(1)</script>",
  "😀".repeat(40),
  "\ud800",
  "a".repeat(300),
  "9".repeat(400),
  "NaN",
  "-1",
  "1e309",
  "null",
  "true",
  "[]",
  "{}",
];

function bounded(
  min: number | undefined,
  max: number | undefined,
  cap: number,
): { min: number; max: number } {
  const lo = min ?? 0;
  return { min: lo, max: Math.max(lo, Math.min(max ?? lo + cap, lo + cap)) };
}

export function validish(schema: Schema, hints: Hints = {}, field?: string): fc.Arbitrary<unknown> {
  const hinted = field !== undefined ? hints[field] : undefined;
  const plain = validishPlain(schema, hints);
  return hinted && hinted.length > 0 ? fc.oneof(fc.constantFrom(...hinted), plain) : plain;
}

function validishPlain(schema: Schema, hints: Hints): fc.Arbitrary<unknown> {
  if ("const" in schema) return fc.constant(schema.const);
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as unknown[]));
  const union = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined;
  if (union) return fc.oneof(...union.map((s) => validish(s, hints)));
  if (Array.isArray(schema.allOf)) return validish(Object.assign({}, ...(schema.allOf as Schema[])), hints);
  switch (schema.type) {
    case "string": {
      const { min, max } = bounded(schema.minLength as number, schema.maxLength as number, 40);
      if (typeof schema.pattern === "string") {
        return fc
          .stringMatching(new RegExp(schema.pattern as string))
          .filter(
            (s) => s.length >= min && s.length <= ((schema.maxLength as number) ?? Number.POSITIVE_INFINITY),
          );
      }
      if (schema.format === "date-time") return fc.date({ noInvalidDate: true }).map((d) => d.toISOString());
      return fc.string({ minLength: min, maxLength: max });
    }
    case "integer":
      return fc.integer({
        min: (schema.minimum as number) ?? -1_000_000,
        max: (schema.maximum as number) ?? 1_000_000,
      });
    case "number":
      return fc.double({
        min: (schema.minimum as number) ?? -1e6,
        max: (schema.maximum as number) ?? 1e6,
        noNaN: true,
        noDefaultInfinity: true,
      });
    case "boolean":
      return fc.boolean();
    case "null":
      return fc.constant(null);
    case "array": {
      const { min, max } = bounded(schema.minItems as number, schema.maxItems as number, 4);
      const items = validish((schema.items as Schema) ?? {}, hints);
      return schema.uniqueItems
        ? fc.uniqueArray(items, { minLength: min, maxLength: max, selector: (v) => JSON.stringify(v) })
        : fc.array(items, { minLength: min, maxLength: max });
    }
    case "object": {
      const properties = (schema.properties ?? {}) as Record<string, Schema>;
      const required = (schema.required ?? []) as string[];
      const patterns = (schema.patternProperties ?? {}) as Record<string, Schema>;
      const model = Object.fromEntries(
        Object.entries(properties).map(([key, value]) => [key, validish(value, hints, key)]),
      );
      const fixed = fc.record(model, { requiredKeys: required.filter((k) => k in properties) });
      const [pattern, valueSchema] = Object.entries(patterns)[0] ?? [];
      if (pattern === undefined || valueSchema === undefined) return fixed;
      const extra = fc.dictionary(fc.stringMatching(new RegExp(pattern)), validish(valueSchema, hints), {
        maxKeys: 4,
      });
      return fc.tuple(fixed, extra).map(([a, b]) => ({ ...b, ...a }));
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

export function hostile(schema: Schema, hints: Hints = {}): fc.Arbitrary<unknown> {
  const wrongType = fc.oneof(
    fc.jsonValue({ maxDepth: 3 }),
    fc.constantFrom(...NASTY_STRINGS),
    fc.constantFrom(0, -1, 1e308, -1e308, 0.5, Number.MAX_SAFE_INTEGER + 2, true, null, [], {}),
  );
  const union = (schema.anyOf ?? schema.oneOf) as Schema[] | undefined;
  if (union) return fc.oneof(wrongType, ...union.map((s) => hostile(s, hints)));
  switch (schema.type) {
    case "string": {
      const max = schema.maxLength as number | undefined;
      return fc.oneof(
        wrongType,
        fc.constantFrom(...NASTY_STRINGS),
        fc.string({ unit: "binary", maxLength: 80 }),
        ...(max !== undefined && max < 100_000 ? [fc.constant("z".repeat(max + 1))] : []),
      );
    }
    case "integer":
    case "number": {
      const outside: number[] = [];
      if (typeof schema.minimum === "number") outside.push(schema.minimum - 1, schema.minimum - 0.001);
      if (typeof schema.maximum === "number") outside.push(schema.maximum + 1, schema.maximum * 10 + 1);
      if (schema.type === "integer") outside.push(1.5);
      return fc.oneof(wrongType, ...(outside.length > 0 ? [fc.constantFrom(...outside)] : []));
    }
    case "array":
      return fc.oneof(
        wrongType,
        fc.array(hostile((schema.items as Schema) ?? {}, hints), { maxLength: 4 }),
        ...(typeof schema.maxItems === "number" && schema.maxItems < 2000
          ? [fc.constant(Array.from({ length: (schema.maxItems as number) + 1 }, (_, i) => `x${i}`))]
          : []),
      );
    case "object": {
      const properties = (schema.properties ?? {}) as Record<string, Schema>;
      const keys = Object.keys(properties);
      const base = validish(schema, hints) as fc.Arbitrary<Record<string, unknown>>;
      const mutations: fc.Arbitrary<unknown>[] = [
        wrongType,
        // One field made hostile.
        ...(keys.length > 0
          ? [
              fc
                .tuple(base, fc.constantFrom(...keys))
                .chain(([value, key]) =>
                  hostile(properties[key]!, hints).map((bad) => ({ ...value, [key]: bad })),
                ),
            ]
          : []),
        // An unknown or prototype-polluting field.
        fc
          .tuple(
            base,
            fc.constantFrom("__proto__", "constructor", "prototype", "isAdmin", "role", "zz_unknown"),
            wrongType,
          )
          // A computed key makes an own "__proto__" field, which JSON.stringify sends.
          .map(([value, key, bad]) => ({ ...value, [key]: bad })),
        // A required field left out.
        ...((schema.required as string[] | undefined)?.length
          ? [
              fc.tuple(base, fc.constantFrom(...(schema.required as string[]))).map(([value, key]) => {
                const copy = { ...value };
                delete copy[key];
                return copy;
              }),
            ]
          : []),
      ];
      return fc.oneof(...mutations);
    }
    default:
      return wrongType;
  }
}
