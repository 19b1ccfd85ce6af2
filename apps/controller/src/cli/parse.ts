/** Flag parsers whose errors name the flag, what is allowed and what was given. */
import { InvalidArgumentError } from "commander";

export function integerIn(flag: string, min: number, max: number) {
  return (raw: string): number => {
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || value < min || value > max) {
      throw new InvalidArgumentError(`${flag} must be an integer from ${min} to ${max}, got '${raw}'`);
    }
    return value;
  };
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function labelPair(raw: string): [string, string] {
  const at = raw.indexOf("=");
  if (at <= 0) throw new InvalidArgumentError(`--label must look like key=value, got '${raw}'`);
  return [raw.slice(0, at), raw.slice(at + 1)];
}
