/**
 * Page cursors: opaque to clients, `{ after }` in base64url JSON. A cursor this API did not
 * return (or of the wrong kind for its list) is NBF_CURSOR_INVALID.
 */
import { NbfError } from "../errors.js";

export function encodeCursor(after: string | number): string {
  return Buffer.from(JSON.stringify({ after })).toString("base64url");
}

export function decodeCursor<T extends "string" | "number">(
  cursor: string,
  type: T,
): T extends "string" ? string : number {
  try {
    const after = (JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as { after?: unknown })
      .after;
    if ((type === "string" && typeof after === "string") || (type === "number" && typeof after === "number"))
      return after as T extends "string" ? string : number;
  } catch {
    // falls through to the error below
  }
  throw new NbfError("NBF_CURSOR_INVALID", { cursor });
}
