/** Bulk operations (selector, concurrency, error budget) and their progress summary. */
import type { Kysely, Selectable } from "kysely";
import { fromJson, toJson } from "./json.js";
import type { Database, OperationsTable } from "./schema.js";

export const OPERATION_STATES = ["pending", "running", "succeeded", "failed", "cancelled"] as const;
export type OperationState = (typeof OPERATION_STATES)[number];

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
}

export class OperationsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(op: Omit<OperationRecord, "updatedAt" | "finishedAt" | "summary">): Promise<OperationRecord> {
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
    patch: { state?: OperationState; summary?: unknown; finishedAt?: string | null },
    now = new Date().toISOString(),
  ): Promise<void> {
    const values: Partial<OperationsTable> = { updated_at: now };
    if (patch.state !== undefined) values.state = patch.state;
    if (patch.summary !== undefined) values.summary = toJson(patch.summary);
    if (patch.finishedAt !== undefined) values.finished_at = patch.finishedAt;
    await this.db.updateTable("operations").set(values).where("id", "=", id).execute();
  }

  async list(limit: number): Promise<OperationRecord[]> {
    const rows = await this.db
      .selectFrom("operations")
      .selectAll()
      .orderBy("id", "desc")
      .limit(limit)
      .execute();
    return rows.map(toRecord);
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
  };
}
