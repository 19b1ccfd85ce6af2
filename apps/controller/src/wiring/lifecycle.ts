/**
 * Starting the services' timers and loops once the routes are in place, and stopping them when
 * the app closes: the loops that send work first, then the provider, and the store last, so
 * every pending write is flushed. (Agent links and terminals end earlier, in the WebSocket
 * plugin's pre-close: see plugins.ts.)
 *
 * The jobs that must run once across replicas (command sweeps, operations, reconcile,
 * retention, the janitor) start and stop with their lease (cluster/leases.ts), and stop before
 * the agent links close: a runner still going then would queue commands for agents already on
 * their way to another replica.
 */
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import { janitorJob } from "../cluster/janitor.js";
import type { LeasedJob } from "../cluster/leases.js";
import type { ControllerContext } from "../context.js";
import { pruneHistory } from "../store/retention.js";

const PRUNE_EVERY_MS = 3_600_000;

export async function runServices(app: FastifyInstance): Promise<void> {
  const context = app.nbfleet;
  app.addHook("onClose", async () => {
    await stopServices(context);
  });
  // First: a database where notifications never arrive fails the start here, with the reason.
  await context.signals.start();
  const { gateway, idlePolicy, terminals, relay, cluster } = context;
  await relay.start();
  // Registered before any agent can connect; the URL is known once it listens.
  await cluster.registry.start();
  app.addHook("onListen", async () => {
    void cluster.registry.heartbeat();
  });
  gateway.start();
  // Per agent socket, so it runs once per VM without a lease: a VM's activity is seen only on
  // the replica holding its agent.
  await idlePolicy.start();
  await terminals.start();
  for (const job of leasedJobs(context, app.log)) cluster.leases.add(job);
  await cluster.leases.start();
}

/** Adds the hook that stops the leased jobs when the app starts closing (before the agent links). */
export function stopLeasedJobsFirst(app: FastifyInstance): void {
  app.addHook("preClose", async () => {
    await app.nbfleet.cluster.leases.close();
  });
}

function leasedJobs(context: ControllerContext, log: FastifyBaseLogger): LeasedJob[] {
  const { commands, operations, reconciler, cluster, store, bus } = context;
  const why = cluster.clustered
    ? `on replica ${cluster.replica.id} (it took over the operations runner)`
    : undefined;
  const jobs: LeasedJob[] = [
    { name: "command-sweeps", start: () => commands.start(), stop: () => commands.stopSweeping() },
    { name: "operations", start: () => operations.start(why), stop: () => operations.pause() },
    { name: "reconcile", start: () => reconciler.start(), stop: () => reconciler.stop() },
    pruningJob(context, log),
  ];
  if (cluster.clustered)
    jobs.push(janitorJob({ store, bus, heartbeatMs: cluster.heartbeatMs, log, clock: cluster.clock }));
  return jobs;
}

async function stopServices(context: ControllerContext): Promise<void> {
  const { cluster, reconciler, idlePolicy, operations, commands, provider, store } = context;
  await cluster.leases.close();
  await reconciler.stop();
  idlePolicy.close();
  await operations.close();
  await commands.stop();
  context.streams.close();
  context.eventFeed.close();
  await context.signals.close();
  // Its agents were released when their links closed; the row goes last, still heartbeating till then.
  await cluster.registry.close();
  await provider.close?.();
  await store.close();
}

/** Every hour, events that arrived and commands that finished over `historyRetentionDays` ago are deleted. */
function pruningJob({ store, settings, cluster }: ControllerContext, log: FastifyBaseLogger): LeasedJob {
  let pruner: NodeJS.Timeout | undefined;
  return {
    name: "retention",
    start() {
      pruner = setInterval(() => {
        const cutoff = new Date(cluster.clock.now() - settings.historyRetentionDays * 86_400_000);
        pruneHistory(store.db, cutoff).catch((error) => log.error({ err: error }, "pruning history failed"));
      }, PRUNE_EVERY_MS);
      pruner.unref();
    },
    stop() {
      clearInterval(pruner);
      pruner = undefined;
    },
  };
}
