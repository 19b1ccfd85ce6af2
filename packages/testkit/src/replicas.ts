/**
 * A controller cluster for end-to-end tests: N real `nbfleet server` processes (replicas) on one
 * PostgreSQL database with one admin token, each on a port of its own with NBFLEET_REPLICA_URL
 * set to it, and a TCP balancer in front whose URL is every replica's NBFLEET_PUBLIC_URL, so
 * agents reach "the cluster" as in production and land on any replica.
 *
 * The replicas share one data dir. With the local provider that is the only setup that works on
 * one host: a sandbox's user name is derived from the sandbox root (sandbox-user.ts), so a replica
 * with a data dir of its own would stop or delete another replica's sandbox as the wrong user; the
 * agent artifact each one builds into `<dataDir>/artifact` at start-up is reproducible and written
 * by rename, so replicas starting together race harmlessly on it. (With Azure, replicas sit on
 * different machines and share nothing but the database.)
 */
import { rm } from "node:fs/promises";
import { type ControllerProcess, api, startControllerProcess } from "./controller-process.js";
import { makeDataDir } from "./data-dir.js";
import { freePort } from "./ports.js";
import { queryRows } from "./postgres-client.js";
import { stopChild } from "./processes.js";
import { type TcpBalancer, startTcpBalancer } from "./tcp-balancer.js";

export interface ClusterOptions {
  replicas: number;
  databaseUrl: string;
  token: string;
  /** Shared by every replica (default: a fresh one, removed by `stop()`). */
  dataDir?: string;
  /**
   * Each replica's own data dir instead (index order), as on separate machines sharing only the
   * database; the test makes and removes them. No local machines then (see above).
   */
  dataDirs?: string[];
  /** More NBFLEET_* settings for every replica. */
  env?: NodeJS.ProcessEnv;
  /** Replica heartbeat interval (a replica silent for three is dead); default 1 s. */
  heartbeatSec?: number;
}

export interface Replica {
  /** 0-based, stable across restarts; `name` is A, B, C… */
  readonly index: number;
  readonly name: string;
  readonly port: number;
  /** Its own URL (NBFLEET_REPLICA_URL), not the balancer's. */
  readonly url: string;
  /** The running process; null while it is down. */
  process: ControllerProcess | null;
  /** Output of every process this replica has run, oldest first. */
  readonly outputs: Array<() => string>;
}

export class Cluster {
  private constructor(
    readonly options: ClusterOptions & { dataDir: string; ownDataDir: boolean },
    readonly replicas: Replica[],
    readonly balancer: TcpBalancer,
  ) {}

  /** Starts every replica at once, then the balancer in front of them. */
  static async start(options: ClusterOptions): Promise<Cluster> {
    const dataDir = options.dataDir ?? makeDataDir("nbf-cluster-");
    const ports = await distinctFreePorts(options.replicas);
    const replicas: Replica[] = ports.map((port, index) => ({
      index,
      name: String.fromCharCode(65 + index),
      port,
      url: `http://127.0.0.1:${port}`,
      process: null,
      outputs: [],
    }));
    // The balancer listens before the replicas start: its URL is their public URL.
    const balancer = await startTcpBalancer(replicas.map((r) => ({ host: "127.0.0.1", port: r.port })));
    const cluster = new Cluster(
      { ...options, dataDir, ownDataDir: options.dataDir === undefined },
      replicas,
      balancer,
    );
    // A test process that ends without stop() (a hook timed out) leaves no replica behind.
    process.once("exit", () => {
      for (const replica of replicas) replica.process?.process.kill("SIGKILL");
    });
    try {
      await Promise.all(replicas.map((replica) => cluster.start(replica.index)));
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  get publicUrl(): string {
    return this.balancer.url;
  }

  get token(): string {
    return this.options.token;
  }

  replica(index: number): Replica {
    const replica = this.replicas[index];
    if (!replica) throw new Error(`no replica ${index} (the cluster has ${this.replicas.length})`);
    return replica;
  }

  /** The API of one replica (the balancer's with `"balancer"`). */
  api(target: number | "balancer") {
    const url = target === "balancer" ? this.balancer.url : this.replica(target).url;
    return api({ url, token: this.options.token });
  }

  /** Starts replica `index` (again) on its port; resolves once its /healthz answers. */
  async start(index: number): Promise<ControllerProcess> {
    const replica = this.replica(index);
    if (replica.process) throw new Error(`replica ${replica.name} is already running`);
    const dataDir = this.options.dataDirs?.[index] ?? this.options.dataDir;
    const process = await startControllerProcess(dataDir, replica.port, this.options.token, {
      NBFLEET_DATABASE_URL: this.options.databaseUrl,
      NBFLEET_REPLICA_URL: replica.url,
      NBFLEET_PUBLIC_URL: this.balancer.url,
      NBFLEET_PROVIDER: "local",
      NBFLEET_REPLICA_HEARTBEAT_SEC: String(this.options.heartbeatSec ?? 1),
      ...this.options.env,
    });
    replica.process = process;
    replica.outputs.push(process.output);
    return process;
  }

  /** `kill -9` (or another signal) of replica `index`; resolves once it is gone. */
  async kill(index: number, signal: NodeJS.Signals = "SIGKILL"): Promise<void> {
    const replica = this.replica(index);
    if (!replica.process) return;
    await stopChild(replica.process.process, signal);
    replica.process = null;
  }

  async restart(index: number): Promise<ControllerProcess> {
    await this.kill(index, "SIGTERM");
    return this.start(index);
  }

  /** Indexes of the replicas running now. */
  get running(): number[] {
    return this.replicas.filter((r) => r.process !== null).map((r) => r.index);
  }

  /**
   * Which replica holds each VM's agent socket, read from the database (`vm_status.replica_id`
   * and the replicas' registered URLs); a VM whose agent no replica holds maps to null.
   */
  async holders(): Promise<Map<string, number | null>> {
    const rows = await this.query<{ vm_name: string; url: string | null }>(
      `select s.vm_name, r.url from vm_status s left join replicas r on r.id = s.replica_id
        where s.agent_status = 'connected' or s.replica_id is not null`,
    );
    const byUrl = new Map(this.replicas.map((r) => [r.url.replace(/\/+$/, ""), r.index]));
    return new Map(rows.map((row) => [row.vm_name, byUrl.get(row.url?.replace(/\/+$/, "") ?? "") ?? null]));
  }

  /** How many agents each replica holds (index → count), from `holders()`. */
  async agentCounts(): Promise<number[]> {
    const counts = this.replicas.map(() => 0);
    for (const index of (await this.holders()).values()) if (index !== null) counts[index]!++;
    return counts;
  }

  /** One SQL query on the cluster's database (a connection of its own, closed after). */
  query<T>(text: string, values: unknown[] = []): Promise<T[]> {
    return queryRows<T>(this.options.databaseUrl, text, values);
  }

  /** Everything each replica printed, for a failing test's message. */
  outputs(): string {
    return this.replicas
      .map((r) => r.outputs.map((o, n) => `--- replica ${r.name} (run ${n + 1}) ---\n${o()}`).join("\n"))
      .join("\n");
  }

  /** Stops every replica (SIGTERM, SIGKILL after 15 s) and the balancer. */
  async stop(): Promise<void> {
    await Promise.all(
      this.replicas.map(async (replica) => {
        if (!replica.process) return;
        await stopChild(replica.process.process, "SIGTERM", 15_000);
        replica.process = null;
      }),
    );
    await this.balancer.close();
    if (this.options.ownDataDir) await rm(this.options.dataDir, { recursive: true, force: true });
  }
}

/** `count` free loopback ports, all different (freePort alone may hand out one twice). */
async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}
