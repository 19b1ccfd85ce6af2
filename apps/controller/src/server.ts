/**
 * buildServer: the controller as one fastify app — store (migrated), first admin token,
 * agent gateway, commands, event bus, metrics and the API plugins — wired to a Provider.
 * `app.close()` closes agent links, stops timers and flushes the store before closing it.
 *
 * Start-up order (each needs the ones above it):
 *   store ─┬─ admin token
 *          ├─ event bus ── commands ── gateway ─┬─ VM service ─┬─ operations, idle policy
 *          └─ metrics ─────┘                    │              └─ routes
 *                                               └─ terminals, log streams
 */
import fastifySwagger from "@fastify/swagger";
import type { TypeBoxTypeProvider } from "@fastify/type-provider-typebox";
import fastifyWebsocket from "@fastify/websocket";
import { AGENT_VERSION } from "@nbfleet/shared";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { agentArtifactPlugin } from "./api/agent-artifact/plugin.js";
import { bootstrapTokenPlugin } from "./api/bootstrap-token/plugin.js";
import { commandsPlugin } from "./api/commands/plugin.js";
import { installErrorHandler } from "./api/error-handler.js";
import { eventsPlugin } from "./api/events/plugin.js";
import { logsPlugin } from "./api/logs/plugin.js";
import { notebookPlugin } from "./api/notebook/plugin.js";
import { operationsPlugin } from "./api/operations/plugin.js";
import { policiesPlugin } from "./api/policies/plugin.js";
import { systemPlugin } from "./api/system/plugin.js";
import { terminalPlugin } from "./api/terminal/plugin.js";
import { serverTimeouts } from "./api/timeouts.js";
import { tokensPlugin } from "./api/tokens/plugin.js";
import { installValidator } from "./api/validator.js";
import { vmsPlugin } from "./api/vms/plugin.js";
import type { ArtifactInfo } from "./artifact-info.js";
import { ensureAdminToken } from "./auth/admin-token.js";
import { installAuth } from "./auth/hook.js";
import { CommandService } from "./commands/service.js";
import { type ControllerSettings, parseListen } from "./config/settings.js";
import type { ControllerContext } from "./context.js";
import { EventBus } from "./events/bus.js";
import { Reconciler } from "./fleet/reconciler.js";
import { VmService } from "./fleet/vm-service.js";
import { AgentGateway } from "./gateway/gateway.js";
import { endAfterSocketError } from "./gateway/socket-close.js";
import { LogStreamService } from "./logs/log-streams.js";
import { CachedFigure } from "./metrics/cached-figure.js";
import { Metrics } from "./metrics/metrics.js";
import { OperationsEngine } from "./operations/engine.js";
import { IdlePolicyService } from "./operations/idle-policy.js";
import type { Provider } from "./providers/types.js";
import { pruneHistory } from "./store/retention.js";
import { openStore } from "./store/store.js";
import { TerminalService } from "./terminal/terminal-service.js";
import { readTlsFiles } from "./tls/files.js";

const PRUNE_EVERY_MS = 3_600_000;

/** Log fields that may hold secrets; pino replaces them with "[redacted]". */
export const REDACT_PATHS = [
  "req.headers.authorization",
  "req.headers.cookie",
  "headers.authorization",
  "authorization",
  "password",
  "token",
  "credential",
  "bootstrapToken",
  "passwordHash",
  "*.password",
  "*.token",
  "*.credential",
  "*.bootstrapToken",
  "*.passwordHash",
  "*.authorization",
];

export interface BuildOptions {
  provider: Provider;
  /** The agent artifact to serve to guests at /v1/agent/artifact (real providers need it). */
  artifact?: ArtifactInfo;
  /** A ready logger (e.g. pretty for a TTY); otherwise JSON logs at `settings.logLevel`. */
  logger?: FastifyBaseLogger;
}

export type NbfleetApp = FastifyInstance;

export async function buildServer(settings: ControllerSettings, options: BuildOptions): Promise<NbfleetApp> {
  // With a certificate and key the API and the agent gateway are served over HTTPS (wss).
  const tls = readTlsFiles(settings);
  const timeouts = serverTimeouts(settings);
  const app = Fastify({
    ...(tls ? { https: { cert: tls.certPem, key: tls.keyPem, ...timeouts.node } } : { http: timeouts.node }),
    requestTimeout: timeouts.requestTimeout,
    keepAliveTimeout: timeouts.keepAliveTimeout,
    ...(options.logger
      ? { loggerInstance: options.logger }
      : { logger: { level: settings.logLevel, redact: { paths: REDACT_PATHS, censor: "[redacted]" } } }),
    bodyLimit: settings.bodyLimitBytes,
    // Long-lived responses (event streams) must not hold up a shutdown.
    forceCloseConnections: true,
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: "array", useDefaults: true, allErrors: false },
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const store = await openStore({
    dataDir: settings.dataDir,
    flushMs: settings.stateFlushMs,
    flushMaxItems: settings.stateFlushMaxItems,
    onError: (error, health) =>
      app.log.error({ err: error, store: health }, "store write failed; its rows are kept and retried"),
    onRecovered: (failures) => app.log.warn({ failures }, "store writes succeed again; pending rows written"),
  });
  try {
    await store.vms.markAllDisconnected();
    const adminToken = await ensureAdminToken(store.tokens, settings.dataDir, settings.adminToken);
    const metrics = new Metrics();
    const bus = new EventBus(store.writer, (error) => app.log.error({ err: error }, "event listener failed"));
    const commands = new CommandService({
      store,
      bus,
      metrics,
      ttlSec: settings.commandTtlSec,
      timeoutSec: settings.commandTimeoutSec,
      sweepMs: settings.commandSweepMs,
      onError: (error) => app.log.error({ err: error }, "command sweep failed"),
    });
    const gateway = new AgentGateway({
      store,
      bus,
      commands,
      metrics,
      log: app.log,
      reportIntervalSec: settings.reportIntervalSec,
      pingIntervalMs: settings.pingIntervalSec * 1000,
      helloTimeoutMs: settings.helloTimeoutSec * 1000,
      bootstrapTokenTtlSec: settings.bootstrapTokenTtlSec,
    });
    commands.attach(gateway);
    // Pending status writes first, so a figure is exact when read; at most once per refresh.
    const countVms = async () => {
      await store.writer.flush();
      return store.vms.countByHealth();
    };
    const vmsByHealth = new CachedFigure(countVms, {
      maxAgeMs: settings.metricsRefreshSec * 1000,
      onError: (error) => app.log.warn({ err: error }, "counting VMs by health for /metrics failed"),
    });
    metrics.attach({
      agentsConnected: () => gateway.connectedCount,
      vmsByHealth: () => vmsByHealth.get(),
    });
    const controllerUrl = () => settings.publicUrl ?? listeningUrl(app, settings.listen);
    const vms = new VmService({
      store,
      bus,
      commands,
      gateway,
      provider: options.provider,
      controllerUrl,
      commandTtlSec: settings.commandTtlSec,
      bootstrapTokenTtlSec: settings.bootstrapTokenTtlSec,
      log: app.log,
    });
    const reconciler = new Reconciler({
      store,
      bus,
      provider: options.provider,
      intervalMs: settings.reconcileIntervalSec * 1000,
      log: app.log,
    });
    const operations = new OperationsEngine({
      store,
      bus,
      commands,
      gateway,
      vms,
      log: app.log,
      commandTtlSec: settings.commandTtlSec,
      commandTimeoutSec: settings.commandTimeoutSec,
    });
    const idlePolicy = new IdlePolicyService({ store, bus, commands, gateway, vms, log: app.log });
    const terminals = new TerminalService({
      store,
      bus,
      gateway,
      log: app.log,
      idleTimeoutMs: settings.terminalIdleTimeoutSec * 1000,
      detachedTimeoutMs: settings.terminalDetachedTimeoutSec * 1000,
      maxSessionsPerVm: settings.terminalMaxSessionsPerVm,
    });
    const logs = new LogStreamService({ store, gateway });
    const context: ControllerContext = {
      settings,
      store,
      bus,
      commands,
      gateway,
      vms,
      operations,
      idlePolicy,
      terminals,
      logs,
      metrics,
      provider: options.provider,
      reconciler,
      adminToken,
      controllerUrl,
      startedAt: new Date(),
    };
    app.decorate("nbfleet", context);

    installAuth(app, store.tokens);
    installErrorHandler(app, settings.bodyLimitBytes);
    installValidator(app);
    await app.register(fastifySwagger, {
      openapi: {
        info: { title: "nbfleet controller API", version: AGENT_VERSION },
        components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
        security: [{ bearer: [] }],
      },
    });
    await app.register(fastifyWebsocket, {
      options: { maxPayload: settings.maxMessageBytes, perMessageDeflate: false, clientTracking: false },
      errorHandler: (error, socket) => {
        app.log.debug({ err: error }, "agent socket error");
        endAfterSocketError(socket);
      },
      preClose: (done) => {
        // Terminals first: their clients hear why, and their audit rows are written before
        // the store closes.
        logs.close();
        void terminals.close().finally(() => {
          gateway.close();
          done();
        });
      },
    });
    gateway.register(app);
    await app.register(vmsPlugin);
    await app.register(bootstrapTokenPlugin);
    await app.register(notebookPlugin);
    await app.register(commandsPlugin);
    await app.register(tokensPlugin);
    await app.register(eventsPlugin);
    await app.register(systemPlugin);
    await app.register(operationsPlugin);
    await app.register(policiesPlugin);
    await app.register(terminalPlugin);
    await app.register(logsPlugin);
    if (options.artifact) await app.register(agentArtifactPlugin, { artifact: options.artifact });

    const pruner = setInterval(() => {
      const cutoff = new Date(Date.now() - settings.historyRetentionDays * 86_400_000);
      pruneHistory(store.db, cutoff).catch((error) =>
        app.log.error({ err: error }, "pruning history failed"),
      );
    }, PRUNE_EVERY_MS);
    pruner.unref();
    app.addHook("onClose", async () => {
      clearInterval(pruner);
      await reconciler.stop();
      idlePolicy.close();
      await operations.close();
      await commands.stop();
      await options.provider.close?.();
      await store.close();
    });
    gateway.start();
    commands.start();
    await idlePolicy.start();
    await terminals.start();
    await operations.start();
    reconciler.start();
    return app;
  } catch (error) {
    await store.close();
    throw error;
  }
}

/** Listens on `settings.listen`; resolves with the URL. */
export async function listen(app: NbfleetApp): Promise<string> {
  const { host, port } = parseListen(app.nbfleet.settings.listen);
  await app.listen({ host, port });
  return listeningUrl(app, app.nbfleet.settings.listen);
}

function listeningUrl(app: FastifyInstance, fallback: string): string {
  const scheme = app.nbfleet?.settings.tlsCert ? "https" : "http";
  const address = app.server.address();
  if (address === null || typeof address === "string") return `${scheme}://${fallback}`;
  const host = address.address === "0.0.0.0" || address.address === "::" ? "127.0.0.1" : address.address;
  return `${scheme}://${address.family === "IPv6" && host.includes(":") ? `[${host}]` : host}:${address.port}`;
}
