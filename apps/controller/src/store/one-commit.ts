/**
 * Writes that must land in one commit. A transaction costs two more round trips (BEGIN and
 * COMMIT) than the statements in it, and on PostgreSQL each round trip wakes a server process:
 * with one command in flight, a restart's insert and its result were 6 of the 12 statements it
 * took. A single statement commits alone just as atomically, so only several statements get a
 * transaction; inside the caller's transaction everything simply joins it.
 */
import type { Kysely } from "kysely";

export function inOneCommit<DB, T>(
  db: Kysely<DB>,
  statements: number,
  work: (db: Kysely<DB>) => Promise<T>,
): Promise<T> {
  return db.isTransaction || statements <= 1 ? work(db) : db.transaction().execute(work);
}
