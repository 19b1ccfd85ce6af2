/** Bulk operations (selector, concurrency, error budget) and their progress summary. */
import { OPERATION_STATES, type OperationState } from "@nbfleet/shared/operation-lists";
import type { Kysely, Selectable } from "kysely";
import { fromJson, toJson } from "./json.js";
import type { Database, OperationsTable } from "./schema.js";

export { OPERATION_STATES, type OperationState };

export interface OperationRecord {
  id: string;
  kind: string;
  selector: unknown;
  params: unknown;
  state: OperationState;
  maxConcurrency: number;
  maxErrors: number;
  summary: unknown;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
  /** Why it ended as it did; null while running or when everything succeeded. */
  reason: string | null;
  cancelRequestedAt: string | null;
  createdBy: string | null;
}

export type NewOperation = Omit<
  OperationRecord,
  "updatedAt" | "finishedAt" | "summary" | "reason" | "cancelRequestedAt"
>;

export class OperationsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(op: NewOperation): Promise<OperationRecord> {
    const row: OperationsTable = {
      id: op.id,
      kind: op.kind,
      selector: toJson(op.selector),
      params: toJson(op.params),
      state: op.state,
      max_concurrency: op.maxConcurrency,
      max_errors: op.maxErrors,
      summary: null,
      created_at: op.createdAt,
      updated_at: op.createdAt,
      finished_at: null,
      reason: null,
      cancel_requested_at: null,
      created_by: op.createdBy,
    };
    await this.db.insertInto("operations").values(row).execute();
    return toRecord(row);
  }

  async get(id: string): Promise<OperationRecord | undefined> {
    const row = await this.db.selectFrom("operations").selectAll().where("id", "=", id).executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  async update(
    id: string,
    patch: { state?: OperationState; summary?: unknown; finishedAt?: string | null; reason?: string | null },
    now = new Date().toISOString(),
  ): Promise<void> {
    const values: Partial<OperationsTable> = { updated_at: now };
    if (patch.state !== undefined) values.state = patch.state;
    if (patch.summary !== undefined) values.summary = toJson(patch.summary);
    if (patch.finishedAt !== undefined) values.finished_at = patch.finishedAt;
    if (patch.reason !== undefined) values.reason = patch.reason;
    await this.db.updateTable("operations").set(values).where("id", "=", id).execute();
  }

  /** Newest first; `before` is an operation id (cursor pagination). */
  async list(
    limit: number,
    filter: { state?: OperationState; before?: string } = {},
  ): Promise<OperationRecord[]> {
    let query = this.db.selectFrom("operations").selectAll();
    if (filter.state) query = query.where("state", "=", filter.state);
    if (filter.before !== undefined) query = query.where("id", "<", filter.before);
    const rows = await query.orderBy("id", "desc").limit(limit).execute();
    return rows.map(toRecord);
  }

  async listByState(states: OperationState[]): Promise<OperationRecord[]> {
    const rows = await this.db
      .selectFrom("operations")
      .selectAll()
      .where("state", "in", states)
      .orderBy("id")
      .execute();
    return rows.map(toRecord);
  }

  /** Marks a cancel request (once); false when the operation is already finished or unknown. */
  async requestCancel(id: string, now = new Date().toISOString()): Promise<boolean> {
    const result = await this.db
      .updateTable("operations")
      .set((eb) => ({
        cancel_requested_at: eb.fn.coalesce("cancel_requested_at", eb.val(now)),
        updated_at: now,
      }))
      .where("id", "=", id)
      .where("state", "in", ["pending", "running"])
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }
}

function toRecord(row: Selectable<OperationsTable>): OperationRecord {
  return {
    id: row.id,
    kind: row.kind,
    selector: fromJson<unknown>(row.selector, null),
    params: fromJson<unknown>(row.params, null),
    state: row.state as OperationState,
    maxConcurrency: Number(row.max_concurrency),
    maxErrors: Number(row.max_errors),
    summary: fromJson<unknown>(row.summary, null),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    finishedAt: row.finished_at,
    reason: row.reason ?? null,
    cancelRequestedAt: row.cancel_requested_at ?? null,
    createdBy: row.created_by ?? null,
  };
}
