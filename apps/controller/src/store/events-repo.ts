/** The event log: what agents reported and what the controller did, ordered by id. */
import type { Kysely } from "kysely";
import { fromJson } from "./json.js";
import { insertRows } from "./query-shapes.js";
import type { Database, EventsTable } from "./schema.js";

export type EventLevel = "info" | "warn" | "error";

export interface FleetEvent {
  id: string;
  at: string;
  vmName: string | null;
  source: "agent" | "controller";
  kind: string;
  level: EventLevel;
  message: string;
  data: Record<string, unknown> | null;
}

export function toEventRow(event: FleetEvent): EventsTable {
  return {
    id: event.id,
    at: event.at,
    vm_name: event.vmName,
    source: event.source,
    kind: event.kind,
    level: event.level,
    message: event.message,
    data: event.data === null ? null : JSON.stringify(event.data),
  };
}

const EVENT_COLUMNS = [
  "id",
  "at",
  "vm_name",
  "source",
  "kind",
  "level",
  "message",
  "data",
] as const satisfies ReadonlyArray<keyof EventsTable>;

export interface EventFilter {
  after?: string;
  through?: string;
  vmName?: string;
  limit: number;
}

export class EventsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async insertMany(rows: EventsTable[]): Promise<void> {
    await insertRows(this.db, "events", EVENT_COLUMNS, rows);
  }

  /** Events after `after` (an event id) and up to `through` (inclusive), oldest first. */
  async list(filter: EventFilter): Promise<FleetEvent[]> {
    let query = this.db.selectFrom("events").selectAll();
    if (filter.after !== undefined) query = query.where("id", ">", filter.after);
    if (filter.through !== undefined) query = query.where("id", "<=", filter.through);
    if (filter.vmName !== undefined) query = query.where("vm_name", "=", filter.vmName);
    const rows = await query.orderBy("id").limit(filter.limit).execute();
    return rows.map((row) => ({
      id: row.id,
      at: row.at,
      vmName: row.vm_name,
      source: row.source as FleetEvent["source"],
      kind: row.kind,
      level: row.level as EventLevel,
      message: row.message,
      data: fromJson<Record<string, unknown> | null>(row.data, null),
    }));
  }
}
