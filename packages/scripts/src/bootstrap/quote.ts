/**
 * Quoting of values written into generated scripts. Every setting enters a script only through
 * these, so no value can end its string and run as code.
 */

/**
 * A POSIX shell word that stands for exactly `value`: single quotes keep everything literal
 * (`$`, backticks, `\`, newlines); an embedded quote becomes `'\''`.
 */
export function shellQuote(value: string): string {
  if (value.includes("\0")) throw new TypeError("a shell value cannot contain a NUL byte");
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/**
 * A PowerShell single-quoted (verbatim) string. PowerShell also ends such a string at the
 * typographic quotes U+2018–U+201B, so each of those is doubled as well.
 */
export function powershellQuote(value: string): string {
  if (value.includes("\0")) throw new TypeError("a PowerShell value cannot contain a NUL byte");
  return `'${value.replace(/['\u2018\u2019\u201A\u201B]/g, "$&$&")}'`;
}

const PLAIN_WORD = /^[A-Za-z0-9@%+=:,./_-]+$/;

/** Like `shellQuote`, but leaves a word that needs no quoting bare (for readable command lines). */
export function shellWord(value: string): string {
  return PLAIN_WORD.test(value) ? value : shellQuote(value);
}
