/** Reads a table the `nbfleet` CLI printed (cli-table3 with │ borders) back into rows by heading. */
export function tableRows(text: string): Array<Record<string, string>> {
  const lines = text.split("\n").filter((line) => line.startsWith("│"));
  const cells = (line: string) =>
    line
      .split("│")
      .slice(1, -1)
      .map((cell) => cell.trim());
  const [head, ...rows] = lines;
  if (!head) throw new Error(`no table in:\n${text}`);
  const names = cells(head);
  return rows.map((line) => Object.fromEntries(cells(line).map((cell, i) => [names[i] ?? String(i), cell])));
}
