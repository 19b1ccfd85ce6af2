/** Reading a PUT body the way Resource Manager does: a wrong or missing field is InvalidParameter naming it. */
import { ArmError, invalidParameter } from "../arm/errors.js";
import { parseResourceId } from "../arm/paths.js";
import type { StoredResource } from "../arm/store.js";
import type { EmulatorCore } from "./types.js";

export type Json = Record<string, unknown>;

export function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function object(value: unknown, field: string): Json {
  if (!isObject(value))
    throw invalidParameter(`The value of parameter ${field} is invalid: an object is required.`, field);
  return value;
}

export function optionalObject(value: unknown, field: string): Json | undefined {
  return value === undefined || value === null ? undefined : object(value, field);
}

export function string(value: unknown, field: string): string {
  if (typeof value !== "string" || value === "") {
    throw invalidParameter(`Required parameter '${field}' is missing (null).`, field);
  }
  return value;
}

export function optionalString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string")
    throw invalidParameter(`The value of parameter ${field} is invalid: a string is required.`, field);
  return value;
}

export function array(value: unknown, field: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value))
    throw invalidParameter(`The value of parameter ${field} is invalid: an array is required.`, field);
  return value;
}

export function oneOf<T extends string>(
  value: unknown,
  field: string,
  allowed: readonly T[],
  fallback?: T,
): T {
  if ((value === undefined || value === null) && fallback !== undefined) return fallback;
  const match = allowed.find((a) => typeof value === "string" && a.toLowerCase() === value.toLowerCase());
  if (!match) {
    throw invalidParameter(
      `The value '${String(value)}' of parameter ${field} is not allowed. Allowed values are: ${allowed.join(", ")}.`,
      field,
    );
  }
  return match;
}

export function tags(value: unknown): Record<string, string> {
  if (value === undefined || value === null) return {};
  const out: Record<string, string> = {};
  for (const [key, tag] of Object.entries(object(value, "tags"))) {
    if (typeof tag !== "string") throw invalidParameter(`Tag '${key}' must have a string value.`, "tags");
    if (key.length > 512 || tag.length > 256 || /[<>%&\\?/]/.test(key)) {
      throw new ArmError(400, "InvalidTag", `The tag '${key}' has an invalid name or value.`);
    }
    out[key] = tag;
  }
  if (Object.keys(out).length > 50)
    throw new ArmError(400, "InvalidTag", "A resource can have at most 50 tags.");
  return out;
}

/** A reference `{id}` to a resource that must exist (and not be on its way out) in the emulator. */
export function reference(
  core: EmulatorCore,
  value: unknown,
  field: string,
  expectedType: string,
  referrer: string,
): StoredResource {
  const id = string(object(value, field).id, `${field}.id`);
  const parsed = parseResourceId(id);
  if (!parsed || `${parsed.type}`.toLowerCase() !== expectedType.toLowerCase() || parsed.child) {
    throw invalidParameter(`${field}.id '${id}' is not a ${expectedType} resource id.`, field);
  }
  const target = core.store.get(id);
  if (!target || target.deleting) {
    throw new ArmError(
      400,
      "InvalidResourceReference",
      `Resource ${id} referenced by resource ${referrer} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.`,
    );
  }
  return target;
}

/** A resource name rule: null for a name that matches `pattern`, else what names must be. */
export const nameRule =
  (pattern: RegExp, description: string) =>
  (name: string): string | null =>
    pattern.test(name) ? null : description;

export const NAME_80 = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$/;
export const nameRule80 = nameRule(
  NAME_80,
  "1-80 characters: letters, digits, underscores, periods and hyphens; starting with a letter or digit and ending with a letter, digit or underscore",
);

/** A TypeHandler's `nameProblem`: "<kind> names are <what the rule says>". */
export function namesOf(
  kind: string,
  rule: (name: string) => string | null,
): (name: string) => string | null {
  return (name) => {
    const problem = rule(name);
    return problem === null ? null : `${kind} names are ${problem}`;
  };
}

export function isCidr(value: string): boolean {
  const match = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\/(\d{1,2})$/.exec(value);
  if (!match) return false;
  return match.slice(1, 5).every((octet) => Number(octet) <= 255) && Number(match[5]) <= 32;
}
