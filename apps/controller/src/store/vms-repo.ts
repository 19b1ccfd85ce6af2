/** VMs, their labels and their latest agent/health status (one row each, joined on read). */
import {
  type AgentLinkStatus,
  type CertificateMode,
  type HealthReport,
  type NotebookStatus,
  type OverallHealth,
  VM_STATES,
  type VmState,
} from "@nbfleet/shared";
import {
  type Expression,
  type Kysely,
  PostgresAdapter,
  type SelectQueryBuilder,
  type Selectable,
  type SqlBool,
  sql,
} from "kysely";
import { NbfError } from "../errors.js";
import { agentVersionSql } from "./agent-version-sql.js";
import { inLists } from "./chunks.js";
import { type Dialect, isUniqueViolation } from "./db.js";
import { fromJson, toJson } from "./json.js";
import { queryShapes } from "./query-shapes.js";
import type { Database, VmStatusTable, VmsTable } from "./schema.js";
import {
  type LabelTermSql,
  type VmListPosition,
  type VmSort,
  afterPosition,
  labelTermCondition,
  sortValue,
} from "./vm-list-order.js";

export { VM_STATES, type VmState };

export interface AgentInfo {
  version: string;
  hostname: string;
  os: string;
  arch: string;
}

export interface VmStatus {
  agentStatus: AgentLinkStatus;
  lastSeenAt: string | null;
  connectedAt: string | null;
  agentInfo: AgentInfo | null;
  notebook: NotebookStatus | null;
  health: OverallHealth;
  healthReport: HealthReport | null;
  /** The replica holding the agent's socket (PostgreSQL; null on SQLite and when none does). */
  replicaId: string | null;
}

/** Where a VM's notebook certificate comes from, as chosen at its creation. */
export interface VmCertificateChoice {
  mode: CertificateMode;
  hostname: string | null;
}

export const SELF_SIGNED: VmCertificateChoice = Object.freeze({ mode: "self-signed", hostname: null });

export interface VmRecord {
  name: string;
  provider: string;
  state: VmState;
  labels: Record<string, string>;
  certificate: VmCertificateChoice;
  passwordHash: string | null;
  notebookUrl: string | null;
  providerData: unknown;
  error: string | null;
  createdAt: string;
  updatedAt: string;
  status: VmStatus;
}

/** What `update` may change; absent fields are left as they are. */
export interface VmPatch {
  state?: VmState;
  error?: string | null;
  notebookUrl?: string | null;
  providerData?: unknown;
}

/** A listed VM with its value under the list's sort, for the next page's cursor. */
export type ListedVm = VmRecord & { sortValue: string | number };

export interface NewVm {
  name: string;
  provider: string;
  state: VmState;
  labels: Record<string, string>;
  passwordHash: string | null;
  /** Absent: self-signed. */
  certificate?: VmCertificateChoice;
}

export interface VmFilter {
  labels?: Record<string, string>;
  state?: VmState;
  health?: OverallHealth;
  /** Only VMs whose agent last reported this version. */
  agentVersion?: string;
  /** Only VMs whose served certificate's notAfter (vm_status.cert_not_after) is before this ISO time. */
  certNotAfterBefore?: string;
  /** Label-expression terms (key=value, key!=value, key, !key); all must hold. */
  labelTerms?: LabelTermSql[];
  /** Names strictly after this one (cursor pagination, ordered by name). */
  after?: string;
  /** The order (default: name, ascending); ties are broken by name, ascending. */
  sort?: VmSort;
  /** Rows strictly after this one in `sort` (keyset pagination under any sort). */
  afterRow?: VmListPosition;
  limit: number;
}

/** A status row as the gateway writes it: always whole, so it can be upserted blindly. */
export type StatusRow = VmStatusTable;

export function neverConnectedStatus(vmName: string, now: string): StatusRow {
  return {
    vm_name: vmName,
    agent_status: "never_connected",
    last_seen_at: null,
    connected_at: null,
    agent_info: null,
    notebook: null,
    health: "unknown",
    health_report: null,
    updated_at: now,
    replica_id: null,
    cert_not_after: null,
  };
}

/** vm_status's columns in the order multi-row upserts list them. */
const STATUS_COLUMNS = [
  "vm_name",
  "agent_status",
  "last_seen_at",
  "connected_at",
  "agent_info",
  "notebook",
  "health",
  "health_report",
  "updated_at",
  "replica_id",
  "cert_not_after",
] as const satisfies ReadonlyArray<keyof StatusRow>;

type Joined = Selectable<VmsTable> & {
  agent_status: string | null;
  last_seen_at: string | null;
  connected_at: string | null;
  agent_info: string | null;
  notebook: string | null;
  health: string | null;
  health_report: string | null;
  replica_id?: string | null;
};

export class VmsRepo {
  private readonly dialect: Dialect;

  constructor(private readonly db: Kysely<Database>) {
    this.dialect = db.getExecutor().adapter instanceof PostgresAdapter ? "postgres" : "sqlite";
  }

  async insert(vm: NewVm, now = new Date().toISOString()): Promise<void> {
    try {
      await this.db.transaction().execute(async (trx) => {
        const existing = await trx
          .selectFrom("vms")
          .select("name")
          .where("name", "=", vm.name)
          .executeTakeFirst();
        if (existing) throw new NbfError("NBF_VM_EXISTS", { name: vm.name });
        await trx
          .insertInto("vms")
          .values({
            name: vm.name,
            provider: vm.provider,
            state: vm.state,
            labels: toJson(vm.labels),
            password_hash: vm.passwordHash,
            notebook_url: null,
            provider_data: null,
            error: null,
            created_at: now,
            updated_at: now,
            certificate: vm.certificate ? toJson(vm.certificate) : null,
          })
          .execute();
        const labels = Object.entries(vm.labels);
        if (labels.length > 0) {
          await trx
            .insertInto("vm_labels")
            .values(labels.map(([key, value]) => ({ vm_name: vm.name, key, value })))
            .execute();
        }
        const status = neverConnectedStatus(vm.name, now);
        await trx
          .insertInto("vm_status")
          .values(status)
          .onConflict((oc) => oc.column("vm_name").doUpdateSet(status))
          .execute();
      });
    } catch (error) {
      if (isUniqueViolation(error)) throw new NbfError("NBF_VM_EXISTS", { name: vm.name });
      throw error;
    }
  }

  private base() {
    return this.db
      .selectFrom("vms")
      .leftJoin("vm_status", "vm_status.vm_name", "vms.name")
      .selectAll("vms")
      .select([
        "vm_status.agent_status",
        "vm_status.last_seen_at",
        "vm_status.connected_at",
        "vm_status.agent_info",
        "vm_status.notebook",
        "vm_status.health",
        "vm_status.health_report",
        "vm_status.replica_id",
      ]);
  }

  async get(name: string): Promise<VmRecord | undefined> {
    const row = await this.base().where("vms.name", "=", name).executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  async require(name: string): Promise<VmRecord> {
    const vm = await this.get(name);
    if (!vm) throw new NbfError("NBF_VM_NOT_FOUND", { name });
    return vm;
  }

  async exists(name: string): Promise<boolean> {
    const row = await this.db.selectFrom("vms").select("name").where("name", "=", name).executeTakeFirst();
    return row !== undefined;
  }

  async list(filter: VmFilter): Promise<ListedVm[]> {
    // Filtered by health, the (health, vm_name) index hands out rows in name order already:
    // ordering by that column (equal to vms.name in the join) reads one page instead of
    // sorting every VM in that health.
    const nameColumn = filter.health ? "vm_status.vm_name" : "vms.name";
    const sort = filter.sort ?? { key: "name", order: "asc" };
    const value = sortValue(sort.key, this.dialect, nameColumn);
    const conditions: Expression<SqlBool>[] = [];
    if (filter.state) conditions.push(sql`vms.state = ${filter.state}`);
    if (filter.health) conditions.push(sql`vm_status.health = ${filter.health}`);
    if (filter.certNotAfterBefore !== undefined)
      conditions.push(sql`vm_status.cert_not_after < ${filter.certNotAfterBefore}`);
    if (filter.agentVersion !== undefined)
      conditions.push(sql`${agentVersionSql(this.dialect)} = ${filter.agentVersion}`);
    if (filter.after !== undefined) conditions.push(sql`${sql.ref(nameColumn)} > ${filter.after}`);
    if (filter.afterRow) conditions.push(afterPosition(value, nameColumn, sort, filter.afterRow));
    for (const [key, value] of Object.entries(filter.labels ?? {}))
      conditions.push(labelTermCondition({ key, op: "=", value }));
    for (const term of filter.labelTerms ?? []) conditions.push(labelTermCondition(term));
    const ordered = <Q extends SelectQueryBuilder<Database, "vms" | "vm_status", object>>(query: Q): Q =>
      (sort.key === "name"
        ? query.orderBy(nameColumn, sort.order)
        : query.orderBy(value, sort.order).orderBy(nameColumn, "asc")) as Q;
    let query = this.base().select(value.as("sort_value"));
    if (sort.key === "name") {
      for (const condition of conditions) query = query.where(condition);
    } else {
      // Any other key sorts every matching row: the page's names are picked on narrow rows
      // first, so the sort does not carry each VM's health report and notebook along.
      let page = this.db
        .selectFrom("vms")
        .leftJoin("vm_status", "vm_status.vm_name", "vms.name")
        .select("vms.name");
      for (const condition of conditions) page = page.where(condition);
      query = query.where("vms.name", "in", ordered(page).limit(filter.limit));
    }
    const rows = await ordered(query).limit(filter.limit).execute();
    return rows.map((row) => ({ ...toRecord(row), sortValue: row.sort_value as string | number }));
  }

  /** Which of `names` exist (one statement per 512, in-lists padded so their shapes repeat). */
  async existing(names: readonly string[]): Promise<Set<string>> {
    const found = new Set<string>();
    for (const list of inLists(names)) {
      const rows = await this.db.selectFrom("vms").select("name").where("name", "in", list).execute();
      for (const row of rows) found.add(row.name);
    }
    return found;
  }

  /** Names only, for the gateway and bulk work; ordered. */
  async names(): Promise<string[]> {
    const rows = await this.db.selectFrom("vms").select("name").orderBy("name").execute();
    return rows.map((r) => r.name);
  }

  async update(name: string, patch: VmPatch, now = new Date().toISOString()): Promise<void> {
    await this.db.updateTable("vms").set(patchValues(patch, now)).where("name", "=", name).execute();
  }

  /**
   * `update`, only while the VM is in state `from`, in one statement: false when it is not (or
   * is gone). A create ends with this, so a delete that began meanwhile, on any replica, is seen.
   */
  async updateFrom(
    name: string,
    from: VmState,
    patch: VmPatch,
    now = new Date().toISOString(),
  ): Promise<boolean> {
    const result = await this.db
      .updateTable("vms")
      .set(patchValues(patch, now))
      .where("name", "=", name)
      .where("state", "=", from)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  async setPasswordHash(name: string, hash: string, now = new Date().toISOString()): Promise<void> {
    await this.db
      .updateTable("vms")
      .set({ password_hash: hash, updated_at: now })
      .where("name", "=", name)
      .execute();
  }

  async delete(name: string): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await trx.deleteFrom("vm_labels").where("vm_name", "=", name).execute();
      await trx.deleteFrom("vm_status").where("vm_name", "=", name).execute();
      await trx.deleteFrom("agent_secrets").where("vm_name", "=", name).execute();
      await trx.deleteFrom("vms").where("name", "=", name).execute();
    });
  }

  /** Latest-state upsert of many status rows in one statement per chunk. */
  async upsertStatuses(rows: StatusRow[]): Promise<void> {
    if (rows.length === 0) return;
    const ordered = () =>
      rows.map(
        (row) => Object.fromEntries(STATUS_COLUMNS.map((c) => [c, row[c] ?? null])) as unknown as StatusRow,
      );
    await queryShapes.run(
      this.db,
      `vm_status upsert ×${rows.length}`,
      () => this.upsertStatusesQuery(ordered()).compile(),
      () => rows.flatMap((row) => STATUS_COLUMNS.map((c) => row[c] ?? null)),
    );
  }

  private upsertStatusesQuery(rows: StatusRow[]) {
    return this.db
      .insertInto("vm_status")
      .values(rows)
      .onConflict((oc) =>
        oc
          .column("vm_name")
          .doUpdateSet((eb) => ({
            agent_status: eb.ref("excluded.agent_status"),
            last_seen_at: eb.ref("excluded.last_seen_at"),
            connected_at: eb.ref("excluded.connected_at"),
            agent_info: eb.ref("excluded.agent_info"),
            notebook: eb.ref("excluded.notebook"),
            health: eb.ref("excluded.health"),
            health_report: eb.ref("excluded.health_report"),
            updated_at: eb.ref("excluded.updated_at"),
            cert_not_after: eb.ref("excluded.cert_not_after"),
            // A row carries the replica that wrote it; only a connected agent stays held by it.
            // (Literal SQL: the statement's only parameters are the rows' values, see queryShapes.)
            replica_id: sql<
              string | null
            >`case when excluded.agent_status = 'connected' then excluded.replica_id end`,
          }))
          // Several replicas write behind: a row from a replica the agent has since left (its
          // disconnect, or a report still queued there) must not overwrite the newer connection's.
          // It applies when the row's replica holds the agent, nobody does, or its connection is
          // at least as new.
          .where((eb) =>
            eb.or([
              eb("vm_status.replica_id", "is", null),
              eb("vm_status.replica_id", "=", eb.ref("excluded.replica_id")),
              eb("vm_status.connected_at", "is", null),
              eb("vm_status.connected_at", "<=", eb.ref("excluded.connected_at")),
            ]),
          ),
      );
  }

  /**
   * At start-up no agent is connected to this process: whatever the last run left as
   * `connected` becomes `disconnected` with unknown health.
   */
  async markAllDisconnected(now = new Date().toISOString()): Promise<number> {
    const result = await this.db
      .updateTable("vm_status")
      .set({ agent_status: "disconnected", health: "unknown", updated_at: now })
      .where("agent_status", "=", "connected")
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  /**
   * PostgreSQL's start-up and janitor version of markAllDisconnected: only agents held by no
   * live replica (none recorded, or one whose heartbeat is older than `aliveSince`) become
   * `disconnected`; another live replica's agents are left alone.
   */
  async markDisconnectedUnlessHeldLive(aliveSince: string, now = new Date().toISOString()): Promise<number> {
    const result = await this.db
      .updateTable("vm_status")
      .set({ agent_status: "disconnected", health: "unknown", replica_id: null, updated_at: now })
      .where("agent_status", "=", "connected")
      .where((eb) =>
        eb.or([
          eb("replica_id", "is", null),
          eb(
            "replica_id",
            "not in",
            eb.selectFrom("replicas").select("replicas.id").where("replicas.heartbeat_at", ">=", aliveSince),
          ),
        ]),
      )
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  /**
   * The janitor's routine pass: agents recorded as held by one of `replicaIds` (replicas whose
   * heartbeat stopped) or by none become `disconnected`. A lookup in the partial index
   * `vm_status_replica`, where markDisconnectedUnlessHeldLive reads every connected row.
   */
  async markDisconnectedHeldBy(
    replicaIds: readonly string[],
    now = new Date().toISOString(),
  ): Promise<number> {
    const result = await this.db
      .updateTable("vm_status")
      .set({ agent_status: "disconnected", health: "unknown", replica_id: null, updated_at: now })
      .where("agent_status", "=", "connected")
      .where((eb) =>
        replicaIds.length === 0
          ? eb("replica_id", "is", null)
          : eb.or([eb("replica_id", "is", null), eb("replica_id", "in", [...replicaIds])]),
      )
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  async countByHealth(): Promise<Record<string, number>> {
    const rows = await this.db
      .selectFrom("vms")
      .leftJoin("vm_status", "vm_status.vm_name", "vms.name")
      .select(["vm_status.health"])
      .select((eb) => eb.fn.countAll<number>().as("count"))
      .groupBy("vm_status.health")
      .execute();
    const out: Record<string, number> = {};
    for (const row of rows)
      out[row.health ?? "unknown"] = (out[row.health ?? "unknown"] ?? 0) + Number(row.count);
    return out;
  }
}

function toRecord(row: Joined): VmRecord {
  return {
    name: row.name,
    provider: row.provider,
    state: row.state as VmState,
    labels: fromJson<Record<string, string>>(row.labels, {}),
    certificate: fromJson<VmCertificateChoice>(row.certificate ?? null, SELF_SIGNED),
    passwordHash: row.password_hash,
    notebookUrl: row.notebook_url,
    providerData: fromJson<unknown>(row.provider_data, null),
    error: row.error,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    status: {
      agentStatus: (row.agent_status ?? "never_connected") as AgentLinkStatus,
      lastSeenAt: row.last_seen_at,
      connectedAt: row.connected_at,
      agentInfo: fromJson<AgentInfo | null>(row.agent_info, null),
      notebook: fromJson<NotebookStatus | null>(row.notebook, null),
      health: (row.health ?? "unknown") as OverallHealth,
      healthReport: fromJson<HealthReport | null>(row.health_report, null),
      replicaId: row.replica_id ?? null,
    },
  };
}

function patchValues(patch: VmPatch, now: string): Partial<VmsTable> {
  const values: Partial<VmsTable> = { updated_at: now };
  if (patch.state !== undefined) values.state = patch.state;
  if (patch.error !== undefined) values.error = patch.error;
  if (patch.notebookUrl !== undefined) values.notebook_url = patch.notebookUrl;
  if (patch.providerData !== undefined) values.provider_data = toJson(patch.providerData);
  return values;
}
