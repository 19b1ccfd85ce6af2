/**
 * Python literals for values written into a generated config file. Strings are emitted as
 * single-quoted ASCII with everything outside printable ASCII escaped, so no input (quotes,
 * backslashes, newlines, U+2028, NUL, emoji) can end the literal or start a new statement.
 */
import { AgentError } from "../errors.js";

function hex(code: number, width: number): string {
  return code.toString(16).padStart(width, "0");
}

export function pyStr(value: string): string {
  let out = "'";
  // for…of walks code points, so an astral character becomes one \U escape, not two surrogates.
  for (const char of value) {
    const code = char.codePointAt(0)!;
    if (char === "\\") out += "\\\\";
    else if (char === "'") out += "\\'";
    else if (code >= 0x20 && code <= 0x7e) out += char;
    else if (code <= 0xff) out += `\\x${hex(code, 2)}`;
    else if (code <= 0xffff) out += `\\u${hex(code, 4)}`;
    else out += `\\U${hex(code, 8)}`;
  }
  return `${out}'`;
}

export function pyInt(value: number): string {
  if (!Number.isSafeInteger(value)) {
    throw new AgentError("NBF_INVALID_INPUT", `not an integer for the Python config: ${value}`, { value });
  }
  return String(value);
}

export function pyBool(value: boolean): string {
  return value ? "True" : "False";
}

export type PyValue = string | number | boolean | null | readonly PyValue[];

/** Any supported value: str, int, bool, None or a list of them. */
export function pyValue(value: PyValue): string {
  if (value === null) return "None";
  if (typeof value === "string") return pyStr(value);
  if (typeof value === "number") return pyInt(value);
  if (typeof value === "boolean") return pyBool(value);
  return pyList(value);
}

export function pyList(values: readonly PyValue[]): string {
  return `[${values.map(pyValue).join(", ")}]`;
}
