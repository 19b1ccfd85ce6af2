/**
 * `nbfleet op run agent.upgrade --version V`: commander takes `--version` for the program's own
 * version flag wherever it stands on the line, so after `op run` it is handed to the command
 * under the name it declares (UPGRADE_VERSION_FLAG). Everywhere else `--version` stays the
 * program's.
 */

export const UPGRADE_VERSION_FLAG = "--upgrade-version";

/** Program options that take a value (skipped when looking for the command). */
const VALUED_GLOBALS = new Set(["--url", "--token"]);

/** `argv` as process.argv (node, script, ...args); returns a copy with op run's `--version` renamed. */
export function commandVersionFlag(argv: readonly string[]): string[] {
  const out = [...argv];
  const words: number[] = [];
  for (let i = 2; i < out.length && words.length < 2; i++) {
    const arg = out[i]!;
    if (arg === "--") break;
    if (VALUED_GLOBALS.has(arg)) i++;
    else if (!arg.startsWith("-")) words.push(i);
  }
  if (words.length < 2 || out[words[0]!] !== "op" || out[words[1]!] !== "run") return out;
  for (let i = words[1]! + 1; i < out.length; i++) {
    const arg = out[i]!;
    if (arg === "--") break;
    if (arg === "--version") out[i] = UPGRADE_VERSION_FLAG;
    else if (arg.startsWith("--version="))
      out[i] = `${UPGRADE_VERSION_FLAG}=${arg.slice("--version=".length)}`;
  }
  return out;
}
