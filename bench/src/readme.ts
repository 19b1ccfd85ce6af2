/** The benchmark table's place in the README: between `<!-- bench:start -->` and `<!-- bench:end -->`. */
import { readFile, writeFile } from "node:fs/promises";

const START = "<!-- bench:start -->";
const END = "<!-- bench:end -->";

/** `text` with what lies between the markers replaced by `table`; throws unless each marker is there once, in order. */
export function withTable(text: string, table: string, file: string): string {
  const start = text.indexOf(START);
  const end = text.indexOf(END);
  const once = (marker: string) => text.indexOf(marker) === text.lastIndexOf(marker);
  if (start < 0 || end < start || !once(START) || !once(END))
    throw new Error(`${file}: expected one "${START}" followed by one "${END}"`);
  return `${text.slice(0, start + START.length)}\n${table}\n${text.slice(end)}`;
}

export async function writeTableInto(file: string, table: string): Promise<void> {
  await writeFile(file, withTable(await readFile(file, "utf8"), table, file));
}

/** Fails early (before a long run) when the file cannot take the table. */
export async function checkReadme(file: string): Promise<void> {
  withTable(await readFile(file, "utf8"), "", file);
}
