/** What the numbers were measured on, printed with every table. */
import os from "node:os";

export function describeMachine(): string {
  const cpu = os.cpus()[0]?.model.trim() ?? "unknown CPU";
  const memGiB = Math.round(os.totalmem() / 2 ** 30);
  return `${os.cpus().length} × ${cpu}, ${memGiB} GiB, Node ${process.version}, ${os.type()} ${os.release()}`;
}
