/**
 * Issue 12's figures: the controller as three replicas (processes of their own) on one
 * PostgreSQL (its own server), holding N simulated agents spread evenly over them. The agents
 * live in several sim-fleet processes (a process holds at most 20,000 open files here); each
 * agent dials the replicas in turn, starting with replica i mod 3, as a real agent given several
 * controller URLs does. Measured from here:
 * - agents held per replica, RSS per agent per replica (steady median − baseline median with the
 *   VMs seeded and no agent, over equal windows sampled every second), idle CPU per replica;
 * - notebook restart round trip, one in flight, with the API on one replica and the agent held
 *   by another (simulated agents answer at once): the controller's cross-replica overhead;
 * - `GET /v1/vms?health=unhealthy` over N VMs on PostgreSQL (every 20th notebook failed);
 * - bulk restart of every agent, `bulkConcurrency` at a time, `bulkDelayMs` each: total / ideal,
 *   and the NOTIFYs it took (counted by a LISTEN of our own on the replicas' channel);
 * - `kill -9` of the replica holding a third of the agents: until every agent is connected
 *   again, and how many connections the agents dialled meanwhile;
 * - and the single-controller rows once more, on PostgreSQL (controller-bench with a database URL).
 * Invariants, or the bench fails: every agent held, every command and target succeeded, the
 * bulk reached exactly its concurrency with one restart per agent, every agent reconnected.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import os, { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { LoopStats } from "@nbfleet/testkit/controller-child";
import { ControllerChild } from "@nbfleet/testkit/controller-child-remote";
import { freePort } from "@nbfleet/testkit/ports";
import { type PostgresServer, overUnixSocket, startPostgres } from "@nbfleet/testkit/postgres";
import { countNotifications, queryRows as query } from "@nbfleet/testkit/postgres-client";
import { hasExited } from "@nbfleet/testkit/processes";
import type { SeededVm } from "@nbfleet/testkit/sim-fleet";
import { SimFleetProcess } from "@nbfleet/testkit/sim-fleet-remote";
import { type CommandPhases, commandPhases } from "./command-phases.js";
import {
  type ControllerBenchResult,
  type Latencies,
  runControllerBench,
  seedStore,
} from "./controller-bench.js";
import { JsonClient } from "./http-client.js";
import { type OperationTrace, traceOperation } from "./operation-records.js";
import {
  type OperationsBenchOptions,
  type OperationsBenchResult,
  runOperationsBench,
} from "./operations-bench.js";
import { cpuSeconds, processTree, rssBytes, stealWindow } from "./proc-usage.js";
import { type Spread, median, quantile, spreadOf } from "./stats.js";

/** The replicas' LISTEN/NOTIFY channel (apps/controller/src/cluster/signals.ts, SIGNAL_CHANNEL). */
const SIGNAL_CHANNEL = "nbfleet";
const QUERY_PATH = "/v1/vms?health=unhealthy";
const CONNECT_TIMEOUT_MS = 900_000;

export interface ReplicasBenchOptions {
  agents: number;
  replicas: number;
  /** Simulated agents per sim-fleet process (below the 20,000 open files a process may hold). */
  agentsPerFleet: number;
  steadySec: number;
  reportIntervalSec: number;
  /** Every n-th agent reports a failed notebook (for the unhealthy query). */
  unhealthyEvery: number;
  restarts: number;
  queries: number;
  bulkConcurrency: number;
  bulkDelayMs: number;
  bulkRounds: number;
  /** Write a V8 CPU profile of each replica and sim-fleet process here (node --cpu-prof; the killed replica writes none). */
  profileDir?: string;
  /** Load pg_stat_statements and count the SQL statements each bulk round ran (diagnosis). */
  pgStatements?: boolean;
  /**
   * How the controllers reach PostgreSQL: its loopback TCP port, or its unix socket (what a
   * controller on the database's own host would use).
   */
  pgVia: "tcp" | "socket";
  /**
   * The single-controller part on PostgreSQL, and the operations part's bulk restart on one
   * replica (every agent on the replica that runs the operation: no hop between replicas); null
   * skips both (small trial runs).
   */
  single: {
    agents: number;
    steadySec: number;
    commands: number;
    concurrency: number[];
    queries: number;
    bulk: Omit<OperationsBenchOptions, "freshDatabaseUrl" | "profileDir">;
  } | null;
}

export interface ReplicaFigures {
  held: number;
  rssBaselineMB: number;
  rssIdleMB: number;
  rssPerAgentKB: number;
  cpuPercentIdle: number;
  /** Its event loop's delay and GC pauses over the steady window. */
  idleLoop: LoopStats;
}

export interface BulkRound extends OperationTrace {
  postedOn: string;
  /** The replica that ran it: the holder of the `operations` lease at its end; absent from older results. */
  ranOn?: string;
  phases: CommandPhases;
  totalMs: number;
  ratio: number;
  succeeded: number;
  notifications: number;
  notifyBytes: number;
  notifyPerSec: number;
  notifyByKind: Record<string, number>;
  /** CPU time per target during the operation: the replicas, PostgreSQL, the simulated fleets. */
  cpuMsPerTarget: { replicas: number; postgres: number; fleets: number };
  /** Cores the whole machine would need to run the operation at its ideal rate. */
  coresAtIdealRate: number;
  /** % of the machine's CPU time its hypervisor took (steal) during the round; absent from older results. */
  stealPercent?: number;
  /** With `pgStatements`: the statements PostgreSQL ran during the round, most frequent first. */
  statements?: StatementCounts;
}

export interface StatementCounts {
  perTarget: number;
  /** By the time PostgreSQL spent on them (execution only, not parsing or the protocol). */
  top: Array<{ query: string; perTarget: number; meanMs: number; msPerTarget: number }>;
}

export interface ReplicasBenchResult {
  agents: number;
  pgVia: "tcp" | "socket";
  replicas: number;
  fleets: number;
  reportIntervalSec: number;
  seedMs: number;
  connectMs: number;
  steadyWindowSec: number;
  perReplica: ReplicaFigures[];
  fleetCpuPercentIdle: number;
  restart: Latencies & { succeeded: number; storeMs: Latencies };
  query: Latencies & { itemsPerPage: number; unhealthyVms: number };
  bulk: {
    concurrency: number;
    delayMs: number;
    idealMs: number;
    ratios: Spread;
    notifyPerSec: Spread;
    rounds: BulkRound[];
  };
  kill: {
    killedHeld: number;
    reconnectMs: number;
    /** Connections the agents dialled from the kill until all were back (failed ones included). */
    attempts: number;
    heldAfter: number[];
  };
  loadAverage: Record<string, [number, number, number]>;
  /** % of the machine's CPU time its hypervisor took (steal) in each window; absent from older results. */
  stealPercent?: { idle: number; queries: number; restarts: number };
  single: ControllerBenchResult | null;
  /** The bulk restart on one replica on PostgreSQL; absent from older results. */
  singleBulk?: OperationsBenchResult | null;
}

interface Replica {
  name: string;
  url: string;
  child: ControllerChild;
  client: JsonClient;
}

export async function runReplicasBench(options: ReplicasBenchOptions): Promise<ReplicasBenchResult> {
  const loadAverage: ReplicasBenchResult["loadAverage"] = {};
  const noteLoad = (phase: string) => {
    loadAverage[phase] = os.loadavg().map((n) => Math.round(n * 100) / 100) as [number, number, number];
    // The monotonic clock of --cpu-prof's profiles (µs): windows a replica's profile by phase.
    if (options.profileDir) console.error(`phase ${phase} at ${process.hrtime.bigint() / 1000n} µs`);
  };
  noteLoad("start");
  const postgres = await startPostgres(
    options.pgStatements
      ? { settings: ["shared_preload_libraries=pg_stat_statements", "pg_stat_statements.track=all"] }
      : {},
  );
  const dataDir = await mkdtemp(path.join(tmpdir(), "nbf-bench-replicas-"));
  const token = `nbf_${randomBytes(32).toString("base64url")}`;
  const profileFlags = options.profileDir ? ["--cpu-prof", `--cpu-prof-dir=${options.profileDir}`] : [];
  const replicas: Replica[] = [];
  const fleets: SimFleetProcess[] = [];
  try {
    const databaseUrl = await postgres.createDatabase();
    const controllersUrl = (url: string) =>
      options.pgVia === "socket" ? overUnixSocket(url, postgres) : url;
    const seedStarted = performance.now();
    const vms = await seedStore(dataDir, token, options.agents, databaseUrl);
    const seedMs = performance.now() - seedStarted;

    const ports = await distinctPorts(options.replicas);
    const started = await Promise.all(
      ports.map((port) =>
        ControllerChild.start({
          env: {
            ...process.env,
            NBFLEET_DATA_DIR: dataDir,
            NBFLEET_LISTEN: `127.0.0.1:${port}`,
            NBFLEET_REPLICA_URL: `http://127.0.0.1:${port}`,
            NBFLEET_DATABASE_URL: controllersUrl(databaseUrl),
            NBFLEET_ADMIN_TOKEN: token,
            NBFLEET_REPORT_INTERVAL_SEC: String(options.reportIntervalSec),
            NBFLEET_LOG_LEVEL: "error",
          },
          manySockets: true,
          readyTimeoutMs: 180_000,
          nodeFlags: profileFlags,
        }),
      ),
    );
    started.forEach((child, i) =>
      replicas.push({
        name: String.fromCharCode(65 + i),
        url: `http://127.0.0.1:${ports[i]}`,
        child,
        client: new JsonClient(`http://127.0.0.1:${ports[i]}`, token),
      }),
    );
    const urls = replicas.map((r) => r.url);
    const held = (replica: Replica) =>
      replica.client
        .expect<{ agentsConnected: number }>(200, "GET", "/healthz")
        .then((h) => h.agentsConnected);
    const heldBy = async (among: Replica[]) => Promise.all(among.map(held));
    let killedName = "";
    const alive = () => {
      for (const replica of replicas)
        if (hasExited(replica.child.process) && replica.name !== killedName)
          throw new Error(`replica ${replica.name} died`);
      for (const [i, fleet] of fleets.entries())
        if (hasExited(fleet.process)) throw new Error(`sim-fleet process ${i + 1} died`);
    };

    // Baseline: the replicas with N VMs in the store and no agent, settled.
    await sleep(3000);
    const baseline = await sampleEverySecond(
      replicas.map((r) => r.child.pid),
      options.steadySec,
    );
    noteLoad("before connect");

    // Agent i of each fleet starts on replica i mod n: the replicas get a third each.
    const slices: SeededVm[][] = [];
    for (let i = 0; i < vms.length; i += options.agentsPerFleet)
      slices.push(vms.slice(i, i + options.agentsPerFleet));
    const connectStarted = performance.now();
    const connecting = slices.map((slice) => {
      const fleet = new SimFleetProcess({ nodeFlags: profileFlags });
      fleets.push(fleet);
      return fleet.start({ url: urls[0]!, urls, vms: slice, concurrency: 100, record: true });
    });
    for (const c of connecting) c.catch(() => {});
    for (;;) {
      alive();
      const total = sum(await heldBy(replicas));
      if (total >= options.agents) break;
      if (performance.now() - connectStarted > CONNECT_TIMEOUT_MS)
        throw new Error(`only ${total} of ${options.agents} agents connected after ${CONNECT_TIMEOUT_MS} ms`);
      await sleep(250);
    }
    const connectMs = performance.now() - connectStarted;
    await Promise.all(connecting);
    noteLoad("connected");

    let unhealthyVms = 0;
    for (const fleet of fleets) unhealthyVms += await fleet.failNotebooks(options.unhealthyEvery);
    await until(
      async () =>
        (await countRows(
          databaseUrl,
          "select count(*)::int as n from vm_status where health = 'unhealthy'",
        )) === unhealthyVms,
      60_000,
      `${unhealthyVms} unhealthy VMs in the store`,
    );

    // One report interval to settle, then the steady window: reports and pings only.
    await sleep(options.reportIntervalSec * 1000);
    const pids = replicas.map((r) => r.child.pid);
    const cpuBefore = await Promise.all(pids.map(cpuSeconds));
    const fleetCpuBefore = sum(await Promise.all(fleets.map((f) => cpuSeconds(f.pid))));
    await Promise.all(replicas.map((r) => r.child.loop())); // counted from here
    const steadyStarted = performance.now();
    const idleStolen = stealWindow();
    const steady = await sampleEverySecond(pids, options.steadySec);
    const idleSteal = idleStolen();
    const idleLoops = await Promise.all(replicas.map((r) => r.child.loop()));
    const steadyElapsed = (performance.now() - steadyStarted) / 1000;
    const cpuAfter = await Promise.all(pids.map(cpuSeconds));
    const fleetCpuAfter = sum(await Promise.all(fleets.map((f) => cpuSeconds(f.pid))));
    const heldNow = await heldBy(replicas);
    if (sum(heldNow) !== options.agents)
      throw new Error(
        `after the steady window the replicas held ${heldNow.join(" + ")}, not ${options.agents}`,
      );
    const perReplica = replicas.map((_, i): ReplicaFigures => {
      const base = median(baseline[i]!);
      const idle = median(steady[i]!);
      return {
        held: heldNow[i]!,
        rssBaselineMB: base / 2 ** 20,
        rssIdleMB: idle / 2 ** 20,
        rssPerAgentKB: (idle - base) / heldNow[i]! / 1024,
        cpuPercentIdle: ((cpuAfter[i]! - cpuBefore[i]!) / steadyElapsed) * 100,
        idleLoop: idleLoops[i]!,
      };
    });
    noteLoad("after steady window");

    // The unhealthy query, spread over the replicas.
    const queriesStolen = stealWindow();
    const queryMs: number[] = [];
    let itemsPerPage = 0;
    for (let i = 0; i < options.queries; i++) {
      const client = replicas[i % replicas.length]!.client;
      const t0 = performance.now();
      itemsPerPage = (await client.expect<{ items: unknown[] }>(200, "GET", QUERY_PATH)).items.length;
      queryMs.push(performance.now() - t0);
    }
    const queriesSteal = queriesStolen();
    noteLoad("after queries");

    // Restarts with the API on one replica and the agent on another, as the store says.
    const homeOf = await readHomes(databaseUrl, vms, replicas);
    const healthy = vms.filter((_, i) => (i % options.agentsPerFleet) % options.unhealthyEvery !== 0);
    const heldElsewhere = replicas.map((_, on) => healthy.filter((vm) => homeOf.get(vm.name) !== on));
    const roundTrip: number[] = [];
    const storeMs: number[] = [];
    let succeeded = 0;
    for (const replica of replicas) await replica.client.warm(1);
    const restartsStolen = stealWindow();
    for (let k = 0; k < options.restarts; k++) {
      const on = k % replicas.length;
      const targets = heldElsewhere[on]!;
      const vm = targets[(k * 7919) % targets.length]!;
      const client = replicas[on]!.client;
      const t0 = performance.now();
      const sent = await client.expect<CommandView>(202, "POST", `/v1/vms/${vm.name}/notebook/restart`);
      const done = await client.expect<CommandView>(200, "GET", `/v1/commands/${sent.id}?wait=10`);
      roundTrip.push(performance.now() - t0);
      if (done.state === "succeeded") succeeded++;
      if (done.finishedAt) storeMs.push(Date.parse(done.finishedAt) - Date.parse(done.createdAt));
    }
    if (succeeded !== options.restarts)
      throw new Error(
        `${options.restarts - succeeded} of ${options.restarts} cross-replica restarts did not succeed`,
      );
    const restartsSteal = restartsStolen();
    noteLoad("after restarts");

    // Bulk restarts of every agent.
    for (const fleet of fleets) await fleet.setDelay(options.bulkDelayMs);
    const idealMs = (options.agents / options.bulkConcurrency) * options.bulkDelayMs;
    const timed: Array<
      Omit<BulkRound, keyof OperationTrace> & { window: { startedAt: number; endedAt: number } }
    > = [];
    for (let round = 0; round < options.bulkRounds; round++) {
      await sleep(2000);
      alive();
      const replica = replicas[round % replicas.length]!;
      const counter = await countNotifications(databaseUrl, SIGNAL_CHANNEL);
      const cpu = cpuMeter(replicas, fleets, postgres.port);
      // Made here, after the migrations: they retype every column of the schema, views included.
      if (options.pgStatements) {
        await query(databaseUrl, "create extension if not exists pg_stat_statements");
        await query(databaseUrl, "select pg_stat_statements_reset()");
      }
      await cpu.start();
      const roundStolen = stealWindow();
      const startedAt = Date.now();
      const t0 = performance.now();
      const created = await replica.client.expect<{ operation: { id: string } }>(
        201,
        "POST",
        "/v1/operations",
        {
          action: "notebook.restart",
          selector: { all: true },
          maxConcurrency: options.bulkConcurrency,
        },
      );
      const id = created.operation.id;
      let op: OperationView;
      for (;;) {
        op = await replica.client.expect<OperationView>(200, "GET", `/v1/operations/${id}?targetsLimit=0`);
        if (op.state !== "running" && op.state !== "pending") break;
        if (performance.now() - t0 > idealMs * 20 + 120_000)
          throw new Error(
            `bulk round ${round + 1}: still ${op.state} after ${Math.round(performance.now() - t0)} ms`,
          );
        await sleep(50);
      }
      const totalMs = performance.now() - t0;
      const roundSteal = roundStolen();
      const endedAt = Date.now();
      const notified = await counter.stop();
      const used = await cpu.stop();
      const statements = options.pgStatements
        ? await statementCounts(databaseUrl, options.agents)
        : undefined;
      const perTarget = (seconds: number) => (seconds * 1000) / options.agents;
      const cpuMsPerTarget = {
        replicas: perTarget(used.replicas),
        postgres: perTarget(used.postgres),
        fleets: perTarget(used.fleets),
      };
      const { succeeded: done, ...others } = op.counts;
      const notDone = Object.entries(others).filter(([, n]) => n > 0);
      if (op.state !== "succeeded" || done !== options.agents || notDone.length > 0)
        throw new Error(
          `bulk round ${round + 1}: ${op.state} with ${done} of ${options.agents} succeeded${notDone.map(([s, n]) => `, ${n} ${s}`).join("")}; ${await failureReasons(databaseUrl, id)}`,
        );
      const ranOn = await operationsRunner(databaseUrl, replicas);
      timed.push({
        postedOn: replica.name,
        ranOn,
        phases: await commandPhases(databaseUrl, id, {
          concurrency: options.bulkConcurrency,
          delayMs: options.bulkDelayMs,
        }),
        totalMs,
        ratio: totalMs / idealMs,
        succeeded: done,
        notifications: notified.count,
        notifyBytes: notified.bytes,
        notifyPerSec: notified.count / (totalMs / 1000),
        notifyByKind: notified.byKind,
        cpuMsPerTarget,
        coresAtIdealRate:
          ((cpuMsPerTarget.replicas + cpuMsPerTarget.postgres + cpuMsPerTarget.fleets) * options.agents) /
          idealMs,
        window: { startedAt, endedAt },
        stealPercent: roundSteal,
        ...(statements ? { statements } : {}),
      });
      noteLoad(`after bulk ${round + 1}`);
    }
    const records = (await Promise.all(fleets.map((f) => f.records()))).flat();
    const rounds = timed.map(({ window, ...round }, i): BulkRound => {
      const full = {
        ...round,
        ...traceOperation(records, window, {
          concurrency: options.bulkConcurrency,
          delayMs: options.bulkDelayMs,
        }),
      };
      if (full.executed !== options.agents)
        throw new Error(
          `bulk round ${i + 1}: the agents ran ${full.executed} restarts, not ${options.agents}`,
        );
      const expected = Math.min(options.bulkConcurrency, options.agents);
      if (full.peakConcurrency !== expected)
        throw new Error(
          `bulk round ${i + 1}: at most ${full.peakConcurrency} restarts ran at once, not ${expected}`,
        );
      if (full.notifications === 0)
        throw new Error(
          `bulk round ${i + 1}: no NOTIFY seen on channel "${SIGNAL_CHANNEL}" (is it still the replicas' channel?)`,
        );
      return full;
    });
    for (const fleet of fleets) await fleet.setDelay(0);

    // kill -9 of replica A, which holds a third of the agents.
    await sleep(2000);
    const victim = replicas[0]!;
    const survivors = replicas.slice(1);
    const killedHeld = await held(victim);
    const attemptsBefore = sum(await Promise.all(fleets.map(async (f) => (await f.stats()).attempts)));
    killedName = victim.name;
    const killedAt = performance.now();
    victim.child.process.kill("SIGKILL");
    let heldAfter: number[];
    for (;;) {
      alive();
      heldAfter = await heldBy(survivors);
      if (sum(heldAfter) >= options.agents) break;
      if (performance.now() - killedAt > 300_000)
        throw new Error(
          `after the kill only ${sum(heldAfter)} of ${options.agents} agents came back within 300 s`,
        );
      await sleep(100);
    }
    const reconnectMs = performance.now() - killedAt;
    const fleetStats = await Promise.all(fleets.map((f) => f.stats()));
    if (sum(fleetStats.map((s) => s.connected)) !== options.agents)
      throw new Error(
        `the sim fleets say ${sum(fleetStats.map((s) => s.connected))} agents are connected, not ${options.agents}`,
      );
    const attempts = sum(fleetStats.map((s) => s.attempts)) - attemptsBefore;
    noteLoad("after the kill");

    for (const fleet of fleets.splice(0)) await fleet.close();
    for (const replica of replicas.splice(0)) {
      replica.client.close();
      await replica.child.stop();
    }
    const single = options.single
      ? await runControllerBench({
          ...options.single,
          unhealthyEvery: options.unhealthyEvery,
          reportIntervalSec: options.reportIntervalSec,
          databaseUrl: controllersUrl(await postgres.createDatabase()),
        })
      : null;
    const singleBulk = options.single
      ? await runOperationsBench({
          ...options.single.bulk,
          freshDatabaseUrl: async () => controllersUrl(await postgres.createDatabase()),
        })
      : null;

    return {
      agents: options.agents,
      pgVia: options.pgVia,
      replicas: options.replicas,
      fleets: slices.length,
      reportIntervalSec: options.reportIntervalSec,
      seedMs,
      connectMs,
      steadyWindowSec: Math.round(steadyElapsed),
      perReplica,
      fleetCpuPercentIdle: ((fleetCpuAfter - fleetCpuBefore) / steadyElapsed) * 100,
      restart: { ...latencies(roundTrip), succeeded, storeMs: latencies(storeMs) },
      query: { ...latencies(queryMs), itemsPerPage, unhealthyVms },
      bulk: {
        concurrency: options.bulkConcurrency,
        delayMs: options.bulkDelayMs,
        idealMs,
        ratios: spreadOf(rounds.map((r) => r.ratio)),
        notifyPerSec: spreadOf(rounds.map((r) => r.notifyPerSec)),
        rounds,
      },
      kill: { killedHeld, reconnectMs, attempts, heldAfter },
      loadAverage,
      stealPercent: { idle: idleSteal, queries: queriesSteal, restarts: restartsSteal },
      single,
      singleBulk,
    };
  } finally {
    await Promise.all(fleets.map((f) => f.close()));
    for (const replica of replicas) {
      replica.client.close();
      await replica.child.stop();
    }
    await rm(dataDir, { recursive: true, force: true });
    await postgres.remove();
  }
}

interface CommandView {
  id: string;
  state: string;
  createdAt: string;
  finishedAt: string | null;
}

interface OperationView {
  state: string;
  counts: Record<string, number> & { succeeded: number };
}

/** Which replica holds each agent (vm_status.replica_id); every agent must be held by one. */
async function readHomes(
  databaseUrl: string,
  vms: SeededVm[],
  replicas: Replica[],
): Promise<Map<string, number>> {
  const rows = await query<{ vm_name: string; url: string | null }>(
    databaseUrl,
    "select s.vm_name, r.url from vm_status s left join replicas r on r.id = s.replica_id",
  );
  const byUrl = new Map(replicas.map((r, i) => [r.url, i]));
  const homeOf = new Map<string, number>();
  for (const row of rows) {
    const index = row.url === null ? undefined : byUrl.get(row.url);
    if (index !== undefined) homeOf.set(row.vm_name, index);
  }
  const homeless = vms.filter((vm) => !homeOf.has(vm.name));
  if (homeless.length > 0)
    throw new Error(
      `${homeless.length} agents are held by no replica in vm_status.replica_id, e.g. ${homeless[0]!.name}`,
    );
  return homeOf;
}

/** The name of the replica holding the `operations` lease (the one that runs operations). */
async function operationsRunner(databaseUrl: string, replicas: Replica[]): Promise<string> {
  const [row] = await query<{ url: string | null }>(
    databaseUrl,
    "select r.url from leases l left join replicas r on r.id = l.holder where l.name = 'operations'",
  );
  if (!row) return "none";
  return replicas.find((r) => r.url === row.url)?.name ?? "unknown";
}

async function countRows(databaseUrl: string, text: string): Promise<number> {
  return (await query<{ n: number }>(databaseUrl, text))[0]?.n ?? 0;
}

/** RSS of each pid once a second for `seconds`. */
async function sampleEverySecond(pids: number[], seconds: number): Promise<number[][]> {
  const samples: number[][] = pids.map(() => []);
  const started = performance.now();
  while (performance.now() - started < seconds * 1000) {
    const rss = await Promise.all(pids.map(rssBytes));
    rss.forEach((value, i) => samples[i]!.push(value));
    await sleep(1000);
  }
  return samples;
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(250);
  }
}

async function distinctPorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

function latencies(values: number[]): Latencies {
  return {
    p50: quantile(values, 0.5),
    p99: quantile(values, 0.99),
    max: Math.max(...values),
    count: values.length,
  };
}

/**
 * CPU seconds used between start and stop by the replicas, the simulated fleets and the
 * PostgreSQL server on `port` (its postmaster and every backend under it).
 */
function cpuMeter(replicas: Replica[], fleets: SimFleetProcess[], port: number) {
  const postgresPids = async () => {
    const postmaster = await postmasterPid(port);
    return postmaster === null ? [] : processTree(postmaster);
  };
  const total = async (pids: number[]) =>
    sum(await Promise.all(pids.map((pid) => cpuSeconds(pid).catch(() => 0))));
  const read = async () => ({
    replicas: await total(replicas.map((r) => r.child.pid)),
    fleets: await total(fleets.map((f) => f.pid)),
    postgres: await total(await postgresPids()),
  });
  let before = { replicas: 0, fleets: 0, postgres: 0 };
  return {
    async start() {
      before = await read();
    },
    async stop() {
      const after = await read();
      return {
        replicas: after.replicas - before.replicas,
        fleets: after.fleets - before.fleets,
        postgres: Math.max(0, after.postgres - before.postgres),
      };
    },
  };
}

/** The postmaster listening on `port` (its command line carries `-p PORT`). */
async function postmasterPid(port: number): Promise<number | null> {
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const args = (await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "")).split("\0");
    if (!args[0]?.endsWith("/postgres")) continue;
    const at = args.indexOf("-p");
    if (at >= 0 && args[at + 1] === String(port)) return Number(entry);
  }
  return null;
}

async function statementCounts(databaseUrl: string, targets: number): Promise<StatementCounts> {
  const rows = await query<{ query: string; calls: string; total: number }>(
    databaseUrl,
    `select query, calls::text as calls, total_exec_time as total from pg_stat_statements
      where query not like '%pg_stat_statements%'`,
  );
  // One line per statement shape: IN lists and VALUES rows of any length counted together.
  const shapes = new Map<string, { calls: number; totalMs: number }>();
  for (const row of rows) {
    const shape = row.query
      .replace(/\s+/g, " ")
      .replace(/\(\$\d+(, \$\d+)*\)(, \(\$\d+(, \$\d+)*\))*/g, "(…)");
    const entry = shapes.get(shape) ?? { calls: 0, totalMs: 0 };
    entry.calls += Number(row.calls);
    entry.totalMs += row.total;
    shapes.set(shape, entry);
  }
  const total = [...shapes.values()].reduce((n, shape) => n + shape.calls, 0);
  return {
    perTarget: total / targets,
    top: [...shapes]
      .sort(([, x], [, y]) => y.totalMs - x.totalMs)
      .slice(0, 20)
      .map(([shape, { calls, totalMs }]) => ({
        query: shape.slice(0, 240),
        perTarget: calls / targets,
        meanMs: totalMs / calls,
        msPerTarget: totalMs / targets,
      })),
  };
}

/** Why an operation's targets did not succeed: each error code with its count and one message. */
async function failureReasons(databaseUrl: string, operationId: string): Promise<string> {
  const rows = await query<{ error_code: string | null; count: string; message: string | null }>(
    databaseUrl,
    `select error_code, count(*)::text as count, min(error_message) as message from operation_targets
     where operation_id = $1 and state <> 'succeeded' group by error_code order by count(*) desc`,
    [operationId],
  );
  return rows.length === 0
    ? "no target failed"
    : rows
        .map((r) => `${r.error_code ?? "no code"} ×${r.count} (e.g. ${r.message ?? "no message"})`)
        .join(", ");
}
