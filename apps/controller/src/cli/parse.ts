/** Flag parsers whose errors name the flag, what is allowed and what was given. */
import { DNS_NAME_PATTERN } from "@nbfleet/shared";
import { InvalidArgumentError } from "commander";

// The parsers both CLIs use live in shared; the controller's commands import them from here.
export { collect, integerIn, oneOf } from "@nbfleet/shared/cli-parse";

export function labelPair(raw: string): [string, string] {
  const at = raw.indexOf("=");
  if (at <= 0) throw new InvalidArgumentError(`--label must look like key=value, got '${raw}'`);
  return [raw.slice(0, at), raw.slice(at + 1)];
}

/** A DNS name a public CA can issue for (the API's own pattern), checked before any request. */
export function dnsName(flag: string) {
  const pattern = new RegExp(DNS_NAME_PATTERN);
  return (raw: string): string => {
    if (raw.length > 253 || !pattern.test(raw)) {
      throw new InvalidArgumentError(
        `${flag} must be a DNS name of two or more labels (letters, digits, inner hyphens; at most 253 characters), got '${raw}'`,
      );
    }
    return raw;
  };
}
