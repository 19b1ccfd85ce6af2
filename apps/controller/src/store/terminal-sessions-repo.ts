/** The terminal audit log: who opened which session on which VM, when, for how long, and how it ended. */
import type { TerminalSessionView } from "@nbfleet/shared";
import type { Kysely } from "kysely";
import type { Database, TerminalSessionsTable } from "./schema.js";

export type TerminalSessionRecord = TerminalSessionView;

export interface TerminalSessionEnd {
  closedAt: string;
  durationMs: number;
  exitCode: number | null;
  signal: string | null;
  endReason: string;
  bytesIn: number;
  bytesOut: number;
  attaches: number;
}

export class TerminalSessionsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(record: TerminalSessionRecord): Promise<void> {
    await this.db.insertInto("terminal_sessions").values(toRow(record)).execute();
  }

  async finish(id: string, end: TerminalSessionEnd): Promise<void> {
    await this.db
      .updateTable("terminal_sessions")
      .set(endColumns(end))
      .where("id", "=", id)
      .where("closed_at", "is", null)
      .execute();
  }

  /** Sessions a previous controller process left open: none of them survived it. */
  async closeAbandoned(closedAt: string, reason: string): Promise<number> {
    const result = await this.db
      .updateTable("terminal_sessions")
      .set({ closed_at: closedAt, end_reason: reason })
      .where("closed_at", "is", null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  /**
   * With several replicas: the sessions no live replica can still hold. A session lives on the
   * replica holding its VM's agent and ends with that connection, so one is over unless its VM's
   * agent is held by a replica alive since `aliveSince` and connected before the session opened.
   */
  async closeOrphaned(closedAt: string, reason: string, aliveSince: string): Promise<number> {
    const result = await this.db
      .updateTable("terminal_sessions")
      .set({ closed_at: closedAt, end_reason: reason })
      .where("closed_at", "is", null)
      .where(({ exists, not, selectFrom }) =>
        not(
          exists(
            selectFrom("vm_status")
              .innerJoin("replicas", "replicas.id", "vm_status.replica_id")
              .select("vm_status.vm_name")
              .whereRef("vm_status.vm_name", "=", "terminal_sessions.vm_name")
              .whereRef("vm_status.connected_at", "<=", "terminal_sessions.opened_at")
              .where("replicas.heartbeat_at", ">=", aliveSince),
          ),
        ),
      )
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  async get(id: string): Promise<TerminalSessionRecord | undefined> {
    const row = await this.db
      .selectFrom("terminal_sessions")
      .selectAll()
      .where("id", "=", id)
      .executeTakeFirst();
    return row ? fromRow(row) : undefined;
  }

  /** Newest first; `before` is a session id from a previous page. */
  async list(filter: { vmName?: string; before?: string; limit: number }): Promise<TerminalSessionRecord[]> {
    let query = this.db.selectFrom("terminal_sessions").selectAll();
    if (filter.vmName !== undefined) query = query.where("vm_name", "=", filter.vmName);
    if (filter.before !== undefined) query = query.where("id", "<", filter.before);
    const rows = await query.orderBy("id", "desc").limit(filter.limit).execute();
    return rows.map(fromRow);
  }
}

function toRow(r: TerminalSessionRecord): TerminalSessionsTable {
  return {
    id: r.id,
    vm_name: r.vmName,
    token_id: r.tokenId,
    token_name: r.tokenName,
    kind: r.kind,
    command: r.command,
    tty: r.tty ? 1 : 0,
    opened_at: r.openedAt,
    ...endColumns(r),
  };
}

/** How a session ended (or, while it lives, its nulls and zeros so far). */
function endColumns(end: Pick<TerminalSessionRecord, keyof TerminalSessionEnd>) {
  return {
    closed_at: end.closedAt,
    duration_ms: end.durationMs,
    exit_code: end.exitCode,
    signal: end.signal,
    end_reason: end.endReason,
    bytes_in: end.bytesIn,
    bytes_out: end.bytesOut,
    attaches: end.attaches,
  } satisfies Partial<TerminalSessionsTable>;
}

function fromRow(row: TerminalSessionsTable): TerminalSessionRecord {
  return {
    id: row.id,
    vmName: row.vm_name,
    tokenId: row.token_id,
    tokenName: row.token_name,
    kind: row.kind === "exec" ? "exec" : "shell",
    command: row.command,
    tty: row.tty === 1,
    openedAt: row.opened_at,
    closedAt: row.closed_at,
    durationMs: row.duration_ms,
    exitCode: row.exit_code,
    signal: row.signal,
    endReason: row.end_reason,
    bytesIn: row.bytes_in,
    bytesOut: row.bytes_out,
    attaches: row.attaches,
  };
}
