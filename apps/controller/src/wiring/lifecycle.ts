/**
 * Starting the services' timers and loops once the routes are in place, and stopping them when
 * the app closes: the loops that send work first, then the provider, and the store last, so
 * every pending write is flushed. (Agent links and terminals end earlier, in the WebSocket
 * plugin's pre-close: see plugins.ts.)
 */
import type { FastifyBaseLogger, FastifyInstance } from "fastify";
import type { ControllerContext } from "../context.js";
import { pruneHistory } from "../store/retention.js";

const PRUNE_EVERY_MS = 3_600_000;

export async function runServices(app: FastifyInstance): Promise<void> {
  const context = app.nbfleet;
  const pruner = startPruning(context, app.log);
  app.addHook("onClose", async () => {
    clearInterval(pruner);
    await stopServices(context);
  });
  // First: a database where notifications never arrive fails the start here, with the reason.
  await context.signals.start();
  const { gateway, commands, idlePolicy, terminals, operations, reconciler } = context;
  gateway.start();
  commands.start();
  await idlePolicy.start();
  await terminals.start();
  await operations.start();
  reconciler.start();
}

async function stopServices(context: ControllerContext): Promise<void> {
  const { reconciler, idlePolicy, operations, commands, provider, store } = context;
  await reconciler.stop();
  idlePolicy.close();
  await operations.close();
  await commands.stop();
  context.eventFeed.close();
  await context.signals.close();
  await provider.close?.();
  await store.close();
}

/** Every hour, events and finished commands older than `historyRetentionDays` are deleted. */
function startPruning({ store, settings }: ControllerContext, log: FastifyBaseLogger): NodeJS.Timeout {
  const pruner = setInterval(() => {
    const cutoff = new Date(Date.now() - settings.historyRetentionDays * 86_400_000);
    pruneHistory(store.db, cutoff).catch((error) => log.error({ err: error }, "pruning history failed"));
  }, PRUNE_EVERY_MS);
  pruner.unref();
  return pruner;
}
