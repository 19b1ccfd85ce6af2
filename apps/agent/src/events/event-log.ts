/** The agent's event record: JSON lines in state/events.jsonl, trimmed to the newest entries. */
import { appendFile, readFile } from "node:fs/promises";
import type { AgentEvent } from "@nbfleet/shared";
import { writeFileAtomic } from "../util/atomic-write.js";

const KEEP = 1000;

export class EventLog {
  private appended = 0;
  private writing: Promise<void> = Promise.resolve();

  constructor(private readonly file: string) {}

  append(event: AgentEvent): Promise<void> {
    this.writing = this.writing.then(async () => {
      await appendFile(this.file, `${JSON.stringify(event)}\n`, { mode: 0o600 });
      if (++this.appended % KEEP === 0) await this.trim();
    });
    return this.writing;
  }

  async read(limit = KEEP): Promise<AgentEvent[]> {
    await this.writing;
    const text = await readFile(this.file, "utf8").catch(() => "");
    return text
      .split("\n")
      .filter(Boolean)
      .slice(-limit)
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as AgentEvent];
        } catch {
          return [];
        }
      });
  }

  private async trim(): Promise<void> {
    const events = await readFile(this.file, "utf8").catch(() => "");
    const lines = events.split("\n").filter(Boolean);
    if (lines.length > KEEP)
      await writeFileAtomic(this.file, `${lines.slice(-KEEP).join("\n")}\n`, { mode: 0o600 });
  }
}
