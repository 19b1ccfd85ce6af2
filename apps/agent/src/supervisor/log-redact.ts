/**
 * Log lines leave the guest (to the controller, to viewers), but the agent-only notebook token
 * must not: Jupyter prints its URL with `?token=…` at start-up. Every `token=` value and every
 * secret the agent knows is replaced before a line is sent.
 */
const TOKEN_PARAM = /([?&;]token=)[^&\s"'<>]+/gi;
export const REDACTED = "[redacted]";

export function redactLine(line: string, secrets: readonly string[] = []): string {
  let out = line.replace(TOKEN_PARAM, `$1${REDACTED}`);
  for (const secret of secrets) {
    if (secret.length >= 8) out = out.split(secret).join(REDACTED);
  }
  return out;
}
