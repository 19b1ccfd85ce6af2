/**
 * Flag parsers for the commander CLIs (`nbfleet`, `nbfleet-agent`) whose errors name the flag,
 * what is allowed and what was given. Imported as `@nbfleet/shared/cli-parse`, not through the
 * package's index, so only the CLIs load commander.
 */
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

export function oneOf<T extends string>(flag: string, allowed: readonly T[]) {
  return (raw: string): T => {
    if (!(allowed as readonly string[]).includes(raw)) {
      throw new InvalidArgumentError(`${flag} must be one of ${allowed.join(", ")}, got '${raw}'`);
    }
    return raw as T;
  };
}

/** For a repeatable flag: each use adds its value. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}
