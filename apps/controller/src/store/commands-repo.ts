/**
 * Commands and their persisted lifecycle:
 * queued → sent → acked → succeeded | failed | timed_out, and queued|sent → expired.
 * Every transition is a conditional update, so a late or repeated message cannot move a
 * command backwards or finish it twice.
 */
import { COMMAND_STATES, type CommandError, type CommandName, type CommandState } from "@nbfleet/shared";
import { type ExpressionBuilder, type Kysely, type Selectable, sql } from "kysely";
import { inLists, powerOfTwoChunks } from "./chunks.js";
import { fromJson, toJson } from "./json.js";
import { inOneCommit } from "./one-commit.js";
import { insertRows, queryShapes } from "./query-shapes.js";
import type { CommandsTable, Database } from "./schema.js";

export { COMMAND_STATES, type CommandState };
export const TERMINAL_STATES: readonly CommandState[] = ["succeeded", "failed", "timed_out", "expired"];
const UNACKED: CommandState[] = ["queued", "sent"];
/** Commands finished per statement at most (8 values each). */
const FINISH_CHUNK = 128;

export interface FinishRequest {
  id: string;
  vmName: string;
  outcome: { state: "succeeded" | "failed"; result?: unknown; error?: CommandError };
  now: string;
  ackedAt: string | null;
}

export interface CommandRecord {
  id: string;
  vmName: string;
  name: CommandName;
  params: Record<string, unknown>;
  state: CommandState;
  createdAt: string;
  sentAt: string | null;
  ackedAt: string | null;
  finishedAt: string | null;
  expiresAt: string;
  timeoutMs: number;
  timeoutAt: string | null;
  attempts: number;
  result: unknown;
  error: CommandError | null;
  operationId: string | null;
}

export interface NewCommand {
  id: string;
  vmName: string;
  name: CommandName;
  params: Record<string, unknown>;
  createdAt: string;
  expiresAt: string;
  timeoutMs: number;
  operationId: string | null;
}

export const COMMAND_COLUMNS = [
  "id",
  "vm_name",
  "name",
  "params",
  "state",
  "created_at",
  "sent_at",
  "acked_at",
  "finished_at",
  "expires_at",
  "timeout_ms",
  "timeout_at",
  "attempts",
  "result",
  "error_code",
  "error_message",
  "operation_id",
] as const satisfies ReadonlyArray<keyof CommandsTable>;

/** Every column by name: a prepared statement that returns `*` fails once a migration adds one. */
const RETURNED_COLUMNS = sql.join(COMMAND_COLUMNS.map((column) => sql.ref(`commands.${column}`)));

/** A command going out (again): `sent`, its first send time kept, one attempt more. */
export function sentAt(now: string) {
  return (eb: ExpressionBuilder<Database, "commands">) => ({
    state: "sent",
    sent_at: eb.fn.coalesce("sent_at", eb.val(now)),
    attempts: eb("attempts", "+", 1),
  });
}

export class CommandsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(command: NewCommand): Promise<CommandRecord> {
    const row = newRow({ ...command, sentAt: null });
    await this.db.insertInto("commands").values(row).execute();
    return toRecord(row);
  }

  /**
   * Inserts many commands in one statement per chunk and in one commit (the caller's
   * transaction, or its own when there are several chunks); a command with `sentAt` is stored
   * as already `sent` (its agent is connected and it goes out right after the commit).
   */
  async insertMany(commands: Array<NewCommand & { sentAt: string | null }>): Promise<CommandRecord[]> {
    const rows = commands.map(newRow);
    const chunks = [...powerOfTwoChunks(rows, 256)];
    await inOneCommit(this.db, chunks.length, async (db) => {
      for (const chunk of chunks) await insertRows(db, "commands", COMMAND_COLUMNS, chunk);
    });
    return rows.map(toRecord);
  }

  async get(id: string): Promise<CommandRecord | undefined> {
    const row = await this.db.selectFrom("commands").selectAll().where("id", "=", id).executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  async listForVm(vmName: string, limit: number): Promise<CommandRecord[]> {
    const rows = await this.db
      .selectFrom("commands")
      .selectAll()
      .where("vm_name", "=", vmName)
      .orderBy("id", "desc")
      .limit(limit)
      .execute();
    return rows.map(toRecord);
  }

  /** Not yet acknowledged and not expired: what a (re)connecting agent must be sent. */
  /** The commands still to send to each of these VMs' agents (queued or sent, not expired), by VM. */
  async deliverableFor(vmNames: readonly string[], now: string): Promise<Map<string, CommandRecord[]>> {
    const found = new Map<string, CommandRecord[]>();
    for (const list of inLists(vmNames)) {
      const rows = await this.db
        .selectFrom("commands")
        .selectAll()
        .where("vm_name", "in", list)
        .where("state", "in", UNACKED)
        .where("expires_at", ">", now)
        .orderBy("id")
        .execute();
      for (const row of rows) {
        const list = found.get(row.vm_name) ?? [];
        list.push(toRecord(row));
        found.set(row.vm_name, list);
      }
    }
    return found;
  }

  /**
   * For each of these VMs with an acknowledged command still without a result, when the earliest
   * was acknowledged (agents reconnecting together are checked with one query).
   */
  async earliestAckedFor(vmNames: readonly string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (const list of inLists(vmNames)) {
      const rows = await this.db
        .selectFrom("commands")
        .select("vm_name")
        .select((eb) => eb.fn.min<string>("acked_at").as("earliest"))
        .where("vm_name", "in", list)
        .where("state", "=", "acked")
        .groupBy("vm_name")
        .execute();
      for (const row of rows) if (row.earliest !== null) found.set(row.vm_name, row.earliest);
    }
    return found;
  }

  /** Acknowledged before `before` and still without a result (a controller restart may have lost it). */
  async ackedBefore(vmName: string, before: string): Promise<CommandRecord[]> {
    const rows = await this.ackedBeforeQuery(vmName, before).selectAll().orderBy("id").execute();
    return rows.map(toRecord);
  }

  private ackedBeforeQuery(vmName: string, before: string) {
    return this.db
      .selectFrom("commands")
      .where("vm_name", "=", vmName)
      .where("state", "=", "acked")
      .where("acked_at", "<", before);
  }

  async markSent(id: string, now: string): Promise<boolean> {
    const result = await this.db
      .updateTable("commands")
      .set(sentAt(now))
      .where("id", "=", id)
      .where("state", "in", UNACKED)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /** Only the VM the command belongs to can acknowledge it. */
  async markAcked(id: string, vmName: string, now: string, timeoutAt: string): Promise<boolean> {
    // Written as SQL, not built: it runs once per command, and at thousands of acks a second
    // the query builder's work shows (placeholders are still the dialect's own).
    const result = await sql`update commands set state = 'acked', acked_at = ${now}, timeout_at = ${timeoutAt}
      where id = ${id} and vm_name = ${vmName} and state in (${states(UNACKED)})`.execute(this.db);
    return Number(result.numAffectedRows ?? 0) > 0;
  }

  /** Finishes a command unless it already finished; the first result wins. */
  async finish(
    id: string,
    vmName: string,
    outcome: { state: "succeeded" | "failed"; result?: unknown; error?: CommandError },
    now: string,
  ): Promise<boolean> {
    const result = await this.db
      .updateTable("commands")
      .set({
        state: outcome.state,
        finished_at: now,
        result: outcome.result === undefined ? null : toJson(outcome.result),
        error_code: outcome.error?.code ?? null,
        error_message: outcome.error?.message ?? null,
      })
      .where("id", "=", id)
      .where("vm_name", "=", vmName)
      .where("state", "not in", TERMINAL_STATES as CommandState[])
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /**
   * Like `finish` for many commands, answering with each finished command (undefined where it
   * had finished already, belongs to another VM, or is not known). `ackedAt` is an
   * acknowledgement not written yet, stored with the result. When one id comes twice, the first
   * result is the one kept. In one commit, like insertMany.
   */
  async finishManyReturning(results: readonly FinishRequest[]): Promise<Array<CommandRecord | undefined>> {
    const firsts = new Map<string, FinishRequest>();
    for (const r of results) if (!firsts.has(r.id)) firsts.set(r.id, r);
    const finished = new Map<string, CommandRecord>();
    const chunks = [...powerOfTwoChunks([...firsts.values()], FINISH_CHUNK)];
    await inOneCommit(this.db, chunks.length, async (db) => {
      const repo = new CommandsRepo(db);
      for (const chunk of chunks) {
        for (const row of (await repo.finishChunk(chunk)).rows) finished.set(row.id, toRecord(row));
      }
    });
    return results.map((r) => (firsts.get(r.id) === r ? finished.get(r.id) : undefined));
  }

  /** One statement per chunk, compiled once per chunk size (see query-shapes): thousands run a second. */
  private finishChunk(chunk: readonly FinishRequest[]) {
    const values = chunk.map((r) => [
      r.id,
      r.vmName,
      r.outcome.state,
      r.now,
      r.ackedAt,
      r.outcome.result === undefined ? null : toJson(r.outcome.result),
      r.outcome.error?.code ?? null,
      r.outcome.error?.message ?? null,
    ]);
    return queryShapes.run(
      this.db,
      `finish commands ×${chunk.length}`,
      () =>
        sql<
          Selectable<CommandsTable>
        >`with v(cid, cvm, cstate, cfinished, cacked, cresult, ccode, cmessage) as
          (values ${sql.join(values.map((row) => sql`(${sql.join(row)})`))})
          update commands set state = v.cstate, finished_at = v.cfinished,
            acked_at = coalesce(commands.acked_at, v.cacked), result = v.cresult,
            error_code = v.ccode, error_message = v.cmessage
          from v where commands.id = v.cid and commands.vm_name = v.cvm
            and commands.state not in (${states(TERMINAL_STATES)})
          returning ${RETURNED_COLUMNS}`.compile(this.db),
      () => values.flat(),
    );
  }

  /** Moves unacknowledged commands past their expiry to `expired`; returns them. */
  async expireDue(now: string): Promise<CommandRecord[]> {
    return this.sweep("expired", { from: UNACKED, dueColumn: "expires_at", now });
  }

  /** Moves acknowledged commands past their timeout to `timed_out`; returns them. */
  async timeoutDue(now: string): Promise<CommandRecord[]> {
    return this.sweep("timed_out", { from: ["acked"], dueColumn: "timeout_at", now });
  }

  /** A deleted VM's unfinished commands can never be delivered. */
  async expireAllForVm(vmName: string, now: string): Promise<CommandRecord[]> {
    return this.sweep("expired", { from: ["queued", "sent", "acked"], vmName, now });
  }

  private async sweep(
    to: "expired" | "timed_out",
    how: { from: CommandState[]; dueColumn?: "expires_at" | "timeout_at"; vmName?: string; now: string },
  ): Promise<CommandRecord[]> {
    return this.db.transaction().execute(async (trx) => {
      const rows = await sweepSelect(trx, how).execute();
      if (rows.length === 0) return [];
      // Only the rows this update moved: on PostgreSQL another connection may have swept or
      // finished some since the select (SQLite runs one transaction at a time).
      const moved = await trx
        .updateTable("commands")
        .set({ state: to, finished_at: how.now })
        .where(
          "id",
          "in",
          rows.map((r) => r.id),
        )
        .where("state", "in", how.from)
        .returning("id")
        .execute();
      const ids = new Set(moved.map((r) => r.id));
      return rows
        .filter((row) => ids.has(row.id))
        .map((row) => toRecord({ ...row, state: to, finished_at: how.now }));
    });
  }
}

function states(list: readonly CommandState[]) {
  return sql.join(list.map((state) => sql.lit(state)));
}

/** The commands a sweep takes, 1000 at a time (exported for the query-plan test). */
export function sweepSelect(
  db: Kysely<Database>,
  how: {
    from: readonly CommandState[];
    dueColumn?: "expires_at" | "timeout_at";
    vmName?: string;
    now: string;
  },
) {
  // Literal states: the live-command indexes are partial on exactly these (migration 0004).
  let select = db.selectFrom("commands").selectAll().where(liveStates(how.from));
  if (how.dueColumn) select = select.where(how.dueColumn, "<=", how.now);
  if (how.vmName !== undefined) select = select.where("vm_name", "=", how.vmName);
  return select.limit(1000);
}

function liveStates(list: readonly CommandState[]) {
  return list.length === 1
    ? sql<boolean>`state = ${sql.lit(list[0])}`
    : sql<boolean>`state in (${states(list)})`;
}

/** A new command's row: `queued`, or `sent` (first attempt) when `sentAt` is given. */
function newRow(command: NewCommand & { sentAt: string | null }): CommandsTable {
  return {
    id: command.id,
    vm_name: command.vmName,
    name: command.name,
    params: toJson(command.params),
    state: command.sentAt ? "sent" : "queued",
    created_at: command.createdAt,
    sent_at: command.sentAt,
    acked_at: null,
    finished_at: null,
    expires_at: command.expiresAt,
    timeout_ms: command.timeoutMs,
    timeout_at: null,
    attempts: command.sentAt ? 1 : 0,
    result: null,
    error_code: null,
    error_message: null,
    operation_id: command.operationId,
  };
}

export function toRecord(row: Selectable<CommandsTable>): CommandRecord {
  return {
    id: row.id,
    vmName: row.vm_name,
    name: row.name as CommandName,
    params: fromJson<Record<string, unknown>>(row.params, {}),
    state: row.state as CommandState,
    createdAt: row.created_at,
    sentAt: row.sent_at,
    ackedAt: row.acked_at,
    finishedAt: row.finished_at,
    expiresAt: row.expires_at,
    timeoutMs: Number(row.timeout_ms),
    timeoutAt: row.timeout_at,
    attempts: Number(row.attempts),
    result: fromJson<unknown>(row.result, null),
    error: row.error_code ? { code: row.error_code, message: row.error_message ?? "" } : null,
    operationId: row.operation_id,
  };
}
