/** The controller services the background workers (operations engine, idle policy) act through. */
import type { FastifyBaseLogger } from "fastify";
import type { Signals } from "../cluster/signals.js";
import type { CommandService } from "../commands/service.js";
import type { EventBus } from "../events/bus.js";
import type { VmService } from "../fleet/vm-service.js";
import type { AgentGateway } from "../gateway/gateway.js";
import type { Store } from "../store/store.js";

export interface FleetServices {
  store: Store;
  bus: EventBus;
  commands: CommandService;
  gateway: AgentGateway;
  vms: VmService;
  log: FastifyBaseLogger;
  /** Tells the other replicas (an operation's cancel, a policy change). */
  signals?: Signals;
}
