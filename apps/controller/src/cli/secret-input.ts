/** Reads one secret line from stdin (piped), refusing an empty one. */
import { CliError, ExitCode } from "./client.js";

export async function readSecretLine(stream: NodeJS.ReadableStream): Promise<string> {
  let text = "";
  for await (const chunk of stream) {
    text += chunk.toString();
    if (text.includes("\n")) break;
  }
  const line = text.split(/\r?\n/)[0] ?? "";
  if (!line)
    throw new CliError("NBF_PASSWORD_INVALID", "no password on stdin (expected one line)", ExitCode.usage);
  return line;
}
