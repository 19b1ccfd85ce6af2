/**
 * The targets of bulk operations, one row per VM, with their own lifecycle:
 * pending → running → succeeded | failed, and pending → skipped | cancelled.
 * Transitions are conditional updates, so a resumed operation can never move a target twice.
 */
import { TARGET_STATES, type TargetState } from "@nbfleet/shared/operation-lists";
import { type Kysely, type Selectable, type Updateable, sql } from "kysely";
import { inLists, powerOfTwoChunks } from "./chunks.js";
import { fromJson, toJson } from "./json.js";
import { insertRows, queryShapes } from "./query-shapes.js";
import type { Database, OperationTargetsTable } from "./schema.js";

export { TARGET_STATES, type TargetState };
export type FinalTargetState = Exclude<TargetState, "pending" | "running">;

export interface TargetRecord {
  operationId: string;
  seq: number;
  vmName: string;
  state: TargetState;
  commandId: string | null;
  params: Record<string, unknown> | null;
  startedAt: string | null;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
}

export interface NewTarget {
  operationId: string;
  seq: number;
  vmName: string;
  params: Record<string, unknown> | null;
}

/** Rows per INSERT statement (SQLite allows 32,766 bound values; 10 columns each). */
const INSERT_CHUNK = 512;
const TARGET_COLUMNS = [
  "operation_id",
  "seq",
  "vm_name",
  "state",
  "command_id",
  "params",
  "started_at",
  "finished_at",
  "error_code",
  "error_message",
] as const satisfies ReadonlyArray<keyof OperationTargetsTable>;
/** Values per `in (…)` list, padded to a power of two (see chunks.ts). */
const CHUNK = 512;

export class OperationTargetsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  /** Inserts all targets (inside the caller's transaction when `db` is one). */
  async insertMany(targets: NewTarget[]): Promise<void> {
    const rows: OperationTargetsTable[] = targets.map((t) => ({
      operation_id: t.operationId,
      seq: t.seq,
      vm_name: t.vmName,
      state: "pending",
      command_id: null,
      params: t.params === null ? null : toJson(t.params),
      started_at: null,
      finished_at: null,
      error_code: null,
      error_message: null,
    }));
    for (const chunk of powerOfTwoChunks(rows, INSERT_CHUNK))
      await insertRows(this.db, "operation_targets", TARGET_COLUMNS, chunk);
  }

  async list(
    operationId: string,
    options: { afterSeq?: number; state?: TargetState; limit: number },
  ): Promise<TargetRecord[]> {
    let query = this.db.selectFrom("operation_targets").selectAll().where("operation_id", "=", operationId);
    if (options.state) query = query.where("state", "=", options.state);
    if (options.afterSeq !== undefined) query = query.where("seq", ">", options.afterSeq);
    const rows = await query.orderBy("seq").limit(options.limit).execute();
    return rows.map(toRecord);
  }

  async counts(operationId: string): Promise<Record<TargetState, number>> {
    const rows = await this.db
      .selectFrom("operation_targets")
      .select(["state"])
      .select((eb) => eb.fn.countAll<number>().as("count"))
      .where("operation_id", "=", operationId)
      .groupBy("state")
      .execute();
    const out = Object.fromEntries(TARGET_STATES.map((s) => [s, 0])) as Record<TargetState, number>;
    for (const row of rows) out[row.state as TargetState] = Number(row.count);
    return out;
  }

  /** pending → running with the command id it will use; false when it was not pending. */
  async markRunning(
    operationId: string,
    seq: number,
    commandId: string | null,
    now: string,
  ): Promise<boolean> {
    return this.move(operationId, seq, "pending", {
      state: "running",
      command_id: commandId,
      started_at: now,
    });
  }

  /**
   * pending → running for many targets in one statement; each target's command id is
   * `commandIdPrefix` followed by its seq (see operations/actions commandIdFor), or null.
   * Returns the seqs that were pending and are now running, each with whether its VM still
   * exists (read by the same statement: on PostgreSQL one round trip fewer per start).
   */
  async markRunningMany(
    operationId: string,
    seqs: number[],
    commandIdPrefix: string | null,
    now: string,
  ): Promise<Map<number, { vmExists: boolean }>> {
    const running = new Map<number, { vmExists: boolean }>();
    // In chunks: a batch is as large as the operation's concurrency (every target at "100%"),
    // and one statement binds at most 32,766 values on SQLite, 65,535 on PostgreSQL.
    for (const padded of inLists(seqs, CHUNK)) {
      const { rows } = await queryShapes.run(
        this.db,
        `targets running ×${padded.length} ${commandIdPrefix === null ? "without" : "with"} commands`,
        () =>
          listedTargets(this.db, operationId, padded, "pending")
            .set({
              state: "running",
              started_at: now,
              command_id: commandIdPrefix === null ? null : sql<string>`${commandIdPrefix} || seq`,
            })
            .returning([
              "seq",
              sql<boolean | number>`exists (select 1 from vms where vms.name = operation_targets.vm_name)`.as(
                "vm_exists",
              ),
            ])
            .compile(),
        () => ["running", now, commandIdPrefix, ...listedTargetsParameters(operationId, padded, "pending")],
      );
      // A boolean on PostgreSQL, 0 or 1 on SQLite.
      for (const row of rows) running.set(Number(row.seq), { vmExists: Boolean(row.vm_exists) });
    }
    return running;
  }

  /**
   * running → a final state for many targets (the caller's transaction makes it one commit);
   * successes of the same instant go in one statement.
   */
  async finishMany(
    operationId: string,
    outcomes: Array<{
      seq: number;
      state: "succeeded" | "failed" | "skipped";
      error: { code: string; message: string } | null;
      at: string;
    }>,
  ): Promise<void> {
    const plain = new Map<string, number[]>();
    for (const outcome of outcomes) {
      if (outcome.state === "succeeded" && outcome.error === null) {
        const seqs = plain.get(outcome.at) ?? [];
        seqs.push(outcome.seq);
        plain.set(outcome.at, seqs);
      } else await this.finish(operationId, outcome.seq, outcome.state, outcome.error, outcome.at);
    }
    for (const [at, seqs] of plain) {
      for (const padded of inLists(seqs, CHUNK)) {
        await queryShapes.run(
          this.db,
          `targets succeeded ×${padded.length}`,
          () =>
            listedTargets(this.db, operationId, padded, "running")
              .set(finalValues("succeeded", at, null))
              .compile(),
          () => ["succeeded", at, null, null, ...listedTargetsParameters(operationId, padded, "running")],
        );
      }
    }
  }

  /** running → a final state; false when it was not running (already finished). */
  async finish(
    operationId: string,
    seq: number,
    state: "succeeded" | "failed" | "skipped",
    error: { code: string; message: string } | null,
    now: string,
  ): Promise<boolean> {
    return this.move(operationId, seq, "running", finalValues(state, now, error));
  }

  /** Every pending target → skipped or cancelled, with the reason; returns how many. */
  async closePending(
    operationId: string,
    state: "skipped" | "cancelled",
    reason: { code: string; message: string },
    now: string,
  ): Promise<number> {
    const result = await this.db
      .updateTable("operation_targets")
      .set(finalValues(state, now, reason))
      .where("operation_id", "=", operationId)
      .where("state", "=", "pending")
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  /** One pending target → skipped (its VM is gone). */
  async skip(operationId: string, seq: number, reason: { code: string; message: string }, now: string) {
    await this.move(operationId, seq, ["pending", "running"], finalValues("skipped", now, reason));
  }

  /** One target's conditional transition: true when it was in `from` and has moved. */
  private async move(
    operationId: string,
    seq: number,
    from: TargetState | TargetState[],
    values: Updateable<OperationTargetsTable>,
  ): Promise<boolean> {
    const target = this.db
      .updateTable("operation_targets")
      .set(values)
      .where("operation_id", "=", operationId)
      .where("seq", "=", seq);
    const result = await (typeof from === "string"
      ? target.where("state", "=", from)
      : target.where("state", "in", from)
    ).executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }
}

/**
 * The listed targets (by seq) of an operation that are in `state`, for an update of many. The
 * list's first and last seq bound it as a range too, though the list alone says which rows:
 * with the range, the index finds just the rows between them, whatever the planner believes.
 * Without it, PostgreSQL's planner read every target of the operation in that state and
 * compared each with the list whenever its statistics made the operation look small (they are
 * older than the operation's just-inserted targets): 20,000–28,000 rows for each start of
 * 64–256 targets in the replicas benchmark, 40–90 ms each, the next targets waiting for it.
 */
export function listedTargets(db: Kysely<Database>, operationId: string, seqs: number[], state: TargetState) {
  return db
    .updateTable("operation_targets")
    .where("operation_id", "=", operationId)
    .where("state", "=", state)
    .where("seq", ">=", Math.min(...seqs))
    .where("seq", "<=", Math.max(...seqs))
    .where("seq", "in", seqs);
}

/** listedTargets' parameters in the order it binds them (after those of the update's `set`). */
function listedTargetsParameters(operationId: string, seqs: number[], state: TargetState): unknown[] {
  return [operationId, state, Math.min(...seqs), Math.max(...seqs), ...seqs];
}

function finalValues(
  state: FinalTargetState,
  at: string,
  error: { code: string; message: string } | null,
): Updateable<OperationTargetsTable> {
  return { state, finished_at: at, error_code: error?.code ?? null, error_message: error?.message ?? null };
}

function toRecord(row: Selectable<OperationTargetsTable>): TargetRecord {
  return {
    operationId: row.operation_id,
    seq: Number(row.seq),
    vmName: row.vm_name,
    state: row.state as TargetState,
    commandId: row.command_id,
    params: fromJson<Record<string, unknown> | null>(row.params, null),
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    error: row.error_code ? { code: row.error_code, message: row.error_message ?? "" } : null,
  };
}
