/** Keeps the event log and finished commands from growing without bound. */
import type { Kysely } from "kysely";
import { TERMINAL_STATES } from "./commands-repo.js";
import { eventIdBound } from "./ids.js";
import type { Database } from "./schema.js";

/**
 * `olderThan` on the cluster's clock. Events go by their id, stamped on that clock when they
 * arrived, not by their `at`: an agent reports that from its own clock, which may be years off
 * either way.
 */
export async function pruneHistory(
  db: Kysely<Database>,
  olderThan: Date,
): Promise<{ events: number; commands: number }> {
  const events = await db
    .deleteFrom("events")
    .where("id", "<", eventIdBound(olderThan.getTime()))
    .executeTakeFirst();
  const commands = await db
    .deleteFrom("commands")
    .where("state", "in", [...TERMINAL_STATES])
    .where("finished_at", "<", olderThan.toISOString())
    .executeTakeFirst();
  return { events: Number(events.numDeletedRows), commands: Number(commands.numDeletedRows) };
}
