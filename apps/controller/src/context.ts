/** Everything a route plugin may use, built once by buildServer and decorated as `app.nbfleet`. */
import type { ArtifactStore } from "./artifacts/store.js";
import type { AdminToken } from "./auth/admin-token.js";
import type { PrincipalStreams } from "./auth/principal-streams.js";
import type { Cluster } from "./cluster/cluster.js";
import type { EventFeed } from "./cluster/event-tail.js";
import type { StreamRelay } from "./cluster/relay/stream-relay.js";
import type { Signals } from "./cluster/signals.js";
import type { CommandService } from "./commands/service.js";
import type { ControllerSettings } from "./config/settings.js";
import type { EventBus } from "./events/bus.js";
import type { Reconciler } from "./fleet/reconciler.js";
import type { VmService } from "./fleet/vm-service.js";
import type { AgentGateway } from "./gateway/gateway.js";
import type { LogStreamService } from "./logs/log-streams.js";
import type { Metrics } from "./metrics/metrics.js";
import type { OperationsEngine } from "./operations/engine.js";
import type { IdlePolicyService } from "./operations/idle-policy.js";
import type { Provider } from "./providers/types.js";
import type { Store } from "./store/store.js";
import type { TerminalService } from "./terminal/terminal-service.js";

export interface ControllerContext {
  settings: ControllerSettings;
  store: Store;
  bus: EventBus;
  commands: CommandService;
  gateway: AgentGateway;
  vms: VmService;
  /** Bulk operations (POST /v1/operations) and their resume after a restart. */
  operations: OperationsEngine;
  idlePolicy: IdlePolicyService;
  /** Terminal sessions (GET /v1/vms/{name}/shell) and their audit log. */
  terminals: TerminalService;
  /** Log tails and follows (GET /v1/vms/{name}/logs). */
  logs: LogStreamService;
  /** This replica: its id, its row in `replicas`, the leases of the jobs that run once. */
  cluster: Cluster;
  /** Small signals between replicas (PostgreSQL LISTEN/NOTIFY; nothing to tell with SQLite). */
  signals: Signals;
  /** What GET /v1/events follows: the bus (SQLite), the events table (PostgreSQL, every replica's). */
  eventFeed: EventFeed;
  /** Terminals and log follows of VMs whose agent another replica holds, carried to it. */
  relay: StreamRelay;
  /** Open shells, event streams and log follows by token and console session: revoking either ends them. */
  streams: PrincipalStreams;
  metrics: Metrics;
  provider: Provider;
  /**
   * The agent artifacts as signed versions (`<data-dir>/artifacts`), the controller's built-in
   * one registered at start; an ArtifactCatalog (artifacts/catalog.ts) plus publishing.
   */
  artifacts: ArtifactStore;
  /** The periodic provider reconcile (`runOnce()` for a pass now). */
  reconciler: Reconciler;
  /** The first admin token (plaintext when this start knows it), for the CLI to print once. */
  adminToken: AdminToken;
  /** The URL agents use to reach this controller: `publicUrl`, else the listening address. */
  controllerUrl(): string;
  startedAt: Date;
}

declare module "fastify" {
  interface FastifyInstance {
    nbfleet: ControllerContext;
  }
}
