/** What the numbers were measured on, printed with every table. */
import os from "node:os";

export function describeMachine(): string {
  const cpu = os.cpus()[0]?.model.trim() ?? "unknown CPU";
  const memGiB = Math.round(os.totalmem() / 2 ** 30);
  return `${os.cpus().length} × ${cpu}, ${memGiB} GiB, Node ${process.version}, ${os.type()} ${os.release()}`;
}

export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index]!;
}

export const median = (values: number[]) => quantile(values, 0.5);
