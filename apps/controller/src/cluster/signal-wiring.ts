/**
 * The signals between replicas, built for the context (PostgreSQL: LISTEN/NOTIFY; SQLite: the
 * local no-op), the event feed `GET /v1/events` follows, and what each replica does when a
 * signal from another one arrives:
 *
 *   command.queued    claim and send the commands for agents held here (commands/service.ts)
 *   command.finished  wake the waiters here (API long polls, operation runners)
 *   events            read the events table on (event-tail.ts)
 *   vm.retired        close the deleted VM's agent socket if held here, drop its pending status
 *   operation.created look for new operations, if operations run here (their lease)
 *   operation.cancel  stop the operation's runner if it runs here
 *   policy.changed    reload the idle policy
 *   health.watch      forward the VM's next serving report (a rolling gate waits elsewhere;
 *   vm.serving        ...and opens on it): both in operations/health-watch.ts
 *   resync            (after the listener reconnected) all of the above, re-read from the tables
 */
import type { FastifyBaseLogger } from "fastify";
import { sql } from "kysely";
import type { CommandService } from "../commands/service.js";
import type { ControllerSettings } from "../config/settings.js";
import type { EventBus } from "../events/bus.js";
import type { AgentGateway } from "../gateway/gateway.js";
import type { OperationsEngine } from "../operations/engine.js";
import type { IdlePolicyService } from "../operations/idle-policy.js";
import { newId } from "../store/ids.js";
import type { Store } from "../store/store.js";
import type { ClusterClock } from "./cluster-clock.js";
import { queuedFor } from "./command-rows.js";
import { type EventFeed, EventTail, busFeed } from "./event-tail.js";
import { LocalSignals, PgSignals, type Signals } from "./signals.js";

/**
 * How old an event must be before event streams read it (PostgreSQL). It must exceed the time
 * from an event's making to its commit on any replica: the write-behind's flush interval plus a
 * commit and a notification, with room for a busy replica.
 */
export function eventSettleMs(settings: ControllerSettings): number {
  return Math.max(500, 2 * settings.stateFlushMs + 250);
}

export function createSignals(settings: ControllerSettings, store: Store, log: FastifyBaseLogger): Signals {
  if (store.dialect !== "postgres" || !settings.databaseUrl) return new LocalSignals();
  return new PgSignals({
    databaseUrl: settings.databaseUrl,
    // Fresh per process, like the replica id: the echo of this process's own signals.
    origin: newId("sig"),
    log,
    notify: async (channel, payloads) => {
      await sql`select pg_notify(${channel}, p) from unnest(${payloads}::text[]) as p`.execute(store.db);
    },
  });
}

export function createEventFeed(
  settings: ControllerSettings,
  store: Store,
  bus: EventBus,
  signals: Signals,
  log: FastifyBaseLogger,
  clock: ClusterClock,
): EventFeed {
  if (!signals.clustered) return busFeed(bus, store.writer);
  const tail = new EventTail({
    events: store.events,
    writer: store.writer,
    settleMs: eventSettleMs(settings),
    pollMs: 1000,
    log,
    clock,
  });
  // An event whose write failed for a while is written with a fresh id (see restampEventsAfter).
  store.writer.restampEventsAfter(Math.floor(tail.settleMs / 2), () => clock.now());
  store.writer.onEventsWritten(() => {
    signals.send("events");
    tail.wake();
  });
  signals.on("events", () => tail.wake());
  signals.onResync(() => tail.wake());
  return tail;
}

export interface SignalTargets {
  signals: Signals;
  store: Store;
  commands: CommandService;
  gateway: AgentGateway;
  operations: OperationsEngine;
  idlePolicy: IdlePolicyService;
}

export function routeSignals({
  signals,
  store,
  commands,
  gateway,
  operations,
  idlePolicy,
}: SignalTargets): void {
  if (!signals.clustered) return;
  const retire = (names: readonly string[]) => {
    for (const name of names) {
      store.writer.forget(name);
      if (gateway.isConnected(name)) gateway.retire(name, "VM deleted");
    }
  };
  signals.on("command.queued", (ids) => commands.deliverQueued(ids));
  signals.on("command.finished", (ids) => commands.refreshWaited(ids));
  signals.on("vm.retired", retire);
  signals.on("operation.created", () => operations.sync());
  signals.on("operation.cancel", async (ids) => {
    for (const id of ids) await operations.stopCancelled(id);
  });
  signals.on("policy.changed", () => idlePolicy.reload());
  signals.onResync(async () => {
    const held = gateway.connectedNames();
    await commands.deliverQueued(await queuedFor(store.db, held, new Date().toISOString()));
    await commands.refreshWaited();
    const existing = await store.vms.existing(held);
    retire(held.filter((name) => !existing.has(name)));
    for (const id of operations.runningIds()) {
      if ((await store.operations.get(id))?.cancelRequestedAt) await operations.stopCancelled(id);
    }
    await idlePolicy.reload();
  });
}
