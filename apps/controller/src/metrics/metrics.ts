/**
 * Prometheus metrics of one controller (its own registry, so several controllers can live in
 * one process in tests). Gauges read their value when scraped; the VM counts come from a cache
 * (`CachedFigure`) so that a scrape never queries the store itself.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";

export interface MetricSources {
  agentsConnected(): number;
  /** VMs by effective health; undefined when not known yet (the gauge is then left out). */
  vmsByHealth(): Promise<Record<string, number> | undefined>;
  /** Machines by the agent version they last reported; undefined when not known yet. */
  agentsByVersion?(): Promise<Map<string, number> | undefined>;
  /** This machine's clock minus the database server's (cluster-clock.ts; 0 with SQLite). */
  clockOffsetMs?(): number;
}

export class Metrics {
  readonly registry = new Registry();
  readonly commandDuration: Histogram<"command" | "outcome">;
  readonly agentCloses: Counter<"code">;
  readonly agentMessages: Counter<"type">;
  readonly commandsRerouted: Counter;
  private sources: MetricSources | undefined;
  /**
   * Children per label value, looked up once: prom-client hashes the labels on every call,
   * which showed in profiles at thousands of agent messages a second.
   */
  private readonly durationChildren = new Map<string, { observe(value: number): void }>();
  private readonly messageChildren = new Map<string, { inc(): void }>();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: "nbfleet_process_" });
    const self = this;
    new Gauge({
      name: "nbfleet_agents_connected",
      help: "Agents with an open WebSocket to this controller",
      registers: [this.registry],
      collect() {
        this.set(self.sources?.agentsConnected() ?? 0);
      },
    });
    new Gauge({
      name: "nbfleet_clock_offset_seconds",
      help: "This machine's clock minus the database server's, as last measured (the replicas agree on the database's time; alert well below 1 s: logs are on the machine's)",
      registers: [this.registry],
      collect() {
        this.set((self.sources?.clockOffsetMs?.() ?? 0) / 1000);
      },
    });
    new Gauge({
      name: "nbfleet_vms",
      help: "VMs by effective health (unknown when the agent is not connected)",
      labelNames: ["health"],
      registers: [this.registry],
      async collect() {
        this.reset();
        const counts = await self.sources?.vmsByHealth();
        if (counts === undefined) return;
        for (const health of ["healthy", "degraded", "unhealthy", "unknown"]) {
          this.set({ health }, counts[health] ?? 0);
        }
      },
    });
    new Gauge({
      name: "nbfleet_agents",
      help: "Machines by the agent version they last reported (drift: compare with the newest artifact)",
      labelNames: ["version"],
      registers: [this.registry],
      async collect() {
        this.reset();
        const counts = await self.sources?.agentsByVersion?.();
        for (const [version, count] of counts ?? []) this.set({ version }, count);
      },
    });
    this.commandDuration = new Histogram({
      name: "nbfleet_command_duration_seconds",
      help: "Time from a command's creation to its result",
      labelNames: ["command", "outcome"],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers: [this.registry],
    });
    this.agentCloses = new Counter({
      name: "nbfleet_agent_connections_closed_total",
      help: "Agent WebSocket connections closed, by close code",
      labelNames: ["code"],
      registers: [this.registry],
    });
    this.agentMessages = new Counter({
      name: "nbfleet_agent_messages_total",
      help: "Messages received from agents, by type",
      labelNames: ["type"],
      registers: [this.registry],
    });
    this.commandsRerouted = new Counter({
      name: "nbfleet_commands_rerouted_total",
      help: "Queued commands of connected agents found stranded by the sweep (their routing signal was lost) and routed again",
      registers: [this.registry],
    });
  }

  attach(sources: MetricSources): void {
    this.sources = sources;
  }

  observeCommand(command: string, outcome: string, seconds: number): void {
    const key = `${command}\u0000${outcome}`;
    let child = this.durationChildren.get(key);
    if (!child) {
      child = this.commandDuration.labels({ command, outcome });
      this.durationChildren.set(key, child);
    }
    child.observe(seconds);
  }

  countAgentMessage(type: string): void {
    let child = this.messageChildren.get(type);
    if (!child) {
      child = this.agentMessages.labels({ type });
      this.messageChildren.set(type, child);
    }
    child.inc();
  }
}
