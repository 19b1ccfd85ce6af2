/** Flag parsers whose errors name the flag, what is allowed and what was given. */
import { InvalidArgumentError } from "commander";

// The parsers both CLIs use live in shared; the controller's commands import them from here.
export { collect, integerIn } from "@nbfleet/shared/cli-parse";

export function labelPair(raw: string): [string, string] {
  const at = raw.indexOf("=");
  if (at <= 0) throw new InvalidArgumentError(`--label must look like key=value, got '${raw}'`);
  return [raw.slice(0, at), raw.slice(at + 1)];
}
