/**
 * Quoting for POSIX sh and PowerShell: each function turns a value into one word that stands
 * for exactly that value, so no value can end its string and run as code. Used for generated
 * scripts, for command lines shown to people and for commands sent to a shell.
 */

/**
 * A POSIX shell word that stands for exactly `value`: single quotes keep everything literal
 * (`$`, backticks, `\`, newlines); an embedded quote becomes `'\''`.
 */
export function shellQuote(value: string): string {
  if (value.includes("\0")) throw new TypeError("a shell value cannot contain a NUL byte");
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

const SHELL_PLAIN = /^[A-Za-z0-9@%+=:,./_-]+$/;

/** Like `shellQuote`, but leaves a word that needs no quoting bare (for readable command lines). */
export function shellWord(value: string): string {
  return SHELL_PLAIN.test(value) ? value : shellQuote(value);
}

/**
 * A PowerShell single-quoted (verbatim) string: nothing inside expands (`$env:X`, `$(...)`,
 * backticks, double quotes), and the only escape is a doubled quote. PowerShell also ends such
 * a string at the typographic quotes U+2018–U+201B, so each of those is doubled as well.
 */
export function powershellQuote(value: string): string {
  if (value.includes("\0")) throw new TypeError("a PowerShell value cannot contain a NUL byte");
  return `'${value.replace(/['\u2018\u2019\u201A\u201B]/g, "$&$&")}'`;
}

/**
 * Characters PowerShell passes on literally in a bare argument. Left out on purpose: `,` (array),
 * `@` (splatting), `%` (`--%` stops parsing), `=`, and everything PowerShell expands or groups.
 */
const POWERSHELL_PLAIN = /^[A-Za-z0-9_+./:\\-]+$/;

/** Like `powershellQuote`, but leaves a word that needs no quoting bare. */
export function powershellWord(value: string): string {
  return POWERSHELL_PLAIN.test(value) ? value : powershellQuote(value);
}
