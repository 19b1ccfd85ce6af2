/**
 * NBF_CONFIG_INVALID for one part of the configuration (`source`, e.g. "TLS settings"), and the
 * reading of the files its settings name.
 */
import { readFileSync } from "node:fs";
import { NbfError } from "../errors.js";

export function configSource(source: string) {
  const invalid = (problems: string): NbfError => new NbfError("NBF_CONFIG_INVALID", { source, problems });
  /** The whole file `setting` names, or NBF_CONFIG_INVALID saying why it cannot be read. */
  const read = (file: string, setting: string): string => {
    try {
      return readFileSync(file, "utf8");
    } catch (error) {
      throw invalid(`${setting} ${file} cannot be read: ${(error as Error).message}`);
    }
  };
  return { invalid, read };
}
