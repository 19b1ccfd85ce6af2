/**
 * The reads and claims command routing between replicas needs: command rows by id (a signal
 * carries ids only), a conditional queued → sent claim (only one replica sends a command), its
 * undoing for a frame that never left, which agents are connected to some replica
 * (vm_status, written by the replica holding them), and the queued commands whose signal was
 * lost.
 */
import { type Kysely, sql } from "kysely";
import { inLists } from "../store/chunks.js";
import { COMMAND_COLUMNS, type CommandRecord, sentAt, toRecord } from "../store/commands-repo.js";
import { queryShapes } from "../store/query-shapes.js";
import { rowTest } from "../store/row-test.js";
import type { Database } from "../store/schema.js";

/** Every signal a replica receives reads or claims rows: these two run as query shapes. */
export async function commandsByIds(db: Kysely<Database>, ids: readonly string[]): Promise<CommandRecord[]> {
  const out: CommandRecord[] = [];
  for (const padded of inLists(ids)) {
    const { rows } = await queryShapes.run(
      db,
      `commands by id ×${padded.length}`,
      () => db.selectFrom("commands").select(COMMAND_COLUMNS).where("id", "in", padded).compile(),
      () => padded,
    );
    for (const row of rows) out.push(toRecord(row));
  }
  return out;
}

/**
 * Moves the given commands from queued to sent, if still queued and not expired, and returns
 * the ones moved: whoever claims a command sends it, and nobody else does.
 */
export async function claimQueued(
  db: Kysely<Database>,
  ids: readonly string[],
  now: string,
): Promise<CommandRecord[]> {
  const out: CommandRecord[] = [];
  for (const padded of inLists(ids)) {
    const { rows } = await queryShapes.run(
      db,
      `claim queued commands ×${padded.length}`,
      () => claimStatement(db, padded, now).compile(),
      () => ["sent", now, 1, ...padded, "queued", now],
    );
    for (const row of rows) out.push(toRecord(row));
  }
  return out;
}

/** The claim of claimQueued: by primary key only (see rowTest). Exported for its plan's test. */
export function claimStatement(db: Kysely<Database>, ids: readonly string[], now: string) {
  return db
    .updateTable("commands")
    .set(sentAt(now))
    .where("id", "in", ids)
    .where(rowTest("state"), "=", "queued")
    .where("expires_at", ">", now)
    .returning(COMMAND_COLUMNS);
}

/**
 * Moves the given commands from sent back to queued, if still sent (not acknowledged, not
 * finished), and returns the ones moved: their frame never left this replica (the agent had
 * gone), and the replica holding the agent now may have read its queue before they were
 * committed as sent.
 */
export async function requeueSent(db: Kysely<Database>, ids: readonly string[]): Promise<CommandRecord[]> {
  const out: CommandRecord[] = [];
  for (const chunk of inLists(ids)) {
    const rows = await db
      .updateTable("commands")
      .set({ state: "queued" })
      .where("id", "in", chunk)
      .where(rowTest("state"), "=", "sent")
      .returningAll()
      .execute();
    for (const row of rows) out.push(toRecord(row));
  }
  return out;
}

/** Queued, unexpired commands of these VMs (ids, oldest first per chunk). */
export async function queuedFor(
  db: Kysely<Database>,
  vmNames: readonly string[],
  now: string,
): Promise<string[]> {
  const out: string[] = [];
  for (const chunk of inLists(vmNames)) {
    const rows = await db
      .selectFrom("commands")
      .select("id")
      .where("vm_name", "in", chunk)
      .where("state", "=", "queued")
      .where("expires_at", ">", now)
      .orderBy("id")
      .execute();
    for (const row of rows) out.push(row.id);
  }
  return out;
}

/** Of these VMs, the ones whose agent some replica holds now. */
export async function connectedAmong(db: Kysely<Database>, vmNames: readonly string[]): Promise<Set<string>> {
  const out = new Set<string>();
  for (const chunk of inLists(vmNames)) {
    const rows = await db
      .selectFrom("vm_status")
      .select("vm_name")
      .where("vm_name", "in", chunk)
      .where("agent_status", "=", "connected")
      .execute();
    for (const row of rows) out.add(row.vm_name);
  }
  return out;
}

/**
 * Queued, unexpired commands older than `queuedBefore` whose agent some replica holds: a
 * connected agent's command is claimed within milliseconds, so these lost their routing (the
 * replica that committed them died before its signal left). At most 1,000, oldest first.
 * Exported as a statement for its plan's test.
 */
export function strandedStatement(db: Kysely<Database>, now: string, queuedBefore: string) {
  return (
    db
      .selectFrom("commands")
      .innerJoin("vm_status", "vm_status.vm_name", "commands.vm_name")
      .select(COMMAND_COLUMNS.map((column) => `commands.${column}` as const))
      // The live-command index's own predicate, as a literal (SQLite matches it by its text).
      .where(sql<boolean>`commands.state in ('queued', 'sent')`)
      .where(sql<boolean>`commands.state = 'queued'`)
      .where("commands.expires_at", ">", now)
      .where("commands.created_at", "<=", queuedBefore)
      .where("vm_status.agent_status", "=", "connected")
      .orderBy("commands.created_at")
      .limit(1000)
  );
}

export async function strandedQueued(
  db: Kysely<Database>,
  now: string,
  queuedBefore: string,
): Promise<CommandRecord[]> {
  return (await strandedStatement(db, now, queuedBefore).execute()).map(toRecord);
}
