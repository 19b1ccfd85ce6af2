/** Keeps the event log and finished commands from growing without bound. */
import type { Kysely } from "kysely";
import { TERMINAL_STATES } from "./commands-repo.js";
import type { Database } from "./schema.js";

export async function pruneHistory(
  db: Kysely<Database>,
  olderThan: Date,
): Promise<{ events: number; commands: number }> {
  const cutoff = olderThan.toISOString();
  const events = await db.deleteFrom("events").where("at", "<", cutoff).executeTakeFirst();
  const commands = await db
    .deleteFrom("commands")
    .where("state", "in", [...TERMINAL_STATES])
    .where("finished_at", "<", cutoff)
    .executeTakeFirst();
  return { events: Number(events.numDeletedRows), commands: Number(commands.numDeletedRows) };
}
