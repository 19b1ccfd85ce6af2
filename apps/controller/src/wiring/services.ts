/**
 * The controller's services, built on an open store in the order of the diagram in server.ts
 * (each needs the ones above it) and returned as the context the routes use. Nothing is
 * started here: see lifecycle.ts.
 */
import type { FastifyBaseLogger } from "fastify";
import type { ArtifactInfo } from "../artifact-info.js";
import { countAgentsByVersion } from "../artifacts/agent-versions.js";
import { releaseKeyPath } from "../artifacts/release-key.js";
import { ArtifactStore } from "../artifacts/store.js";
import { ensureAdminToken } from "../auth/admin-token.js";
import { PrincipalStreams } from "../auth/principal-streams.js";
import { type ClusterClock, DatabaseClock } from "../cluster/cluster-clock.js";
import { createCluster } from "../cluster/cluster.js";
import { releaseAgentsAtStart } from "../cluster/janitor.js";
import { StreamRelay } from "../cluster/relay/stream-relay.js";
import { newReplicaIdentity } from "../cluster/replica.js";
import { createEventFeed, createSignals, routeSignals } from "../cluster/signal-wiring.js";
import { CommandService } from "../commands/service.js";
import { readAcmeSettings } from "../config/acme-settings.js";
import type { ControllerSettings } from "../config/settings.js";
import type { ControllerContext } from "../context.js";
import { EventBus } from "../events/bus.js";
import { Reconciler } from "../fleet/reconciler.js";
import { VmService } from "../fleet/vm-service.js";
import { AgentGateway } from "../gateway/gateway.js";
import { LogStreamService } from "../logs/log-streams.js";
import { CachedFigure } from "../metrics/cached-figure.js";
import { Metrics } from "../metrics/metrics.js";
import { OperationsEngine } from "../operations/engine.js";
import { IdlePolicyService } from "../operations/idle-policy.js";
import { TrustCatchUp } from "../operations/trust-catch-up.js";
import type { Provider } from "../providers/types.js";
import type { Store } from "../store/store.js";
import { TerminalService } from "../terminal/terminal-service.js";
import { type ControllerTls, pinOf } from "../tls/files.js";

/** How soon the operations lease holder runs an operation created (or cancelled) on another replica. */
const OPERATIONS_SYNC_MS = 1000;

export interface ServiceDeps {
  provider: Provider;
  log: FastifyBaseLogger;
  /** The URL agents use to reach this controller (known once it listens). */
  controllerUrl(): string;
  /** The address this process listens at (known once it listens); other replicas reach it there. */
  listeningUrl?(): string;
  /** The artifact served at /v1/agent/artifact, registered in the artifact catalog under its version. */
  artifact?: ArtifactInfo;
  /** The certificate files served (null with ACME or plain HTTP). */
  servedTls?: ControllerTls | null;
  /** This process's clock; tests give a replica a skewed one (see cluster-clock.ts). */
  localClock?: () => number;
}

export async function wireServices(
  settings: ControllerSettings,
  store: Store,
  { provider, log, controllerUrl, listeningUrl, artifact, servedTls = null, localClock }: ServiceDeps,
): Promise<ControllerContext> {
  // Guests (and replicas) pin the served certificate when no CA is given: controller.trust moves them.
  const guestPin = servedTls && !servedTls.caPem ? pinOf(servedTls) : null;
  // Read and checked before anything is touched: the CA file's content goes into every new
  // guest's bootstrap.
  const acme = readAcmeSettings(settings);
  // First: a replica whose release key is not the cluster's is refused before it changes anything.
  const artifacts = await ArtifactStore.open({
    store,
    dataDir: settings.dataDir,
    keyFile: releaseKeyPath(settings),
    log,
  });
  if (artifact) await artifacts.registerBuiltIn(artifact);
  const clock = new DatabaseClock({
    db: store.db,
    dialect: store.dialect,
    log,
    ...(localClock ? { local: localClock } : {}),
  });
  await clock
    .measure()
    .catch((error) => log.warn({ err: error }, "reading the database server's time failed"));
  // No agent is connected to a controller that is only starting (nor held by a dead replica).
  await releaseAgentsAtStart(store, settings.replicaHeartbeatSec * 1000, clock.now());
  const replica = newReplicaIdentity();
  const adminToken = await ensureAdminToken(store.tokens, settings.dataDir, settings.adminToken);

  const bus = new EventBus(store.writer, clock, (error) =>
    log.error({ err: error }, "event listener failed"),
  );
  const metrics = new Metrics();
  const signals = createSignals(settings, store, log);
  const commands = new CommandService({
    store,
    bus,
    metrics,
    ttlSec: settings.commandTtlSec,
    timeoutSec: settings.commandTimeoutSec,
    sweepMs: settings.commandSweepMs,
    signals,
    clock,
    onError: (error) => log.error({ err: error }, "command sweep failed"),
  });
  const trustCatchUp = new TrustCatchUp({ db: store.db, commands, log });
  const gateway = new AgentGateway({
    store,
    bus,
    commands,
    metrics,
    log,
    onHello: (vmName, hello) => trustCatchUp.onHello(vmName, hello),
    reportIntervalSec: settings.reportIntervalSec,
    pingIntervalMs: settings.pingIntervalSec * 1000,
    helloTimeoutMs: settings.helloTimeoutSec * 1000,
    bootstrapTokenTtlSec: settings.bootstrapTokenTtlSec,
    replicaId: store.dialect === "postgres" ? replica.id : null,
    artifacts,
  });
  commands.attach(gateway);
  attachFleetFigures(metrics, gateway, store, settings, log, clock);

  const vms = new VmService({
    store,
    bus,
    commands,
    gateway,
    provider,
    controllerUrl,
    controllerUrls: settings.controllerUrls,
    commandTtlSec: settings.commandTtlSec,
    bootstrapTokenTtlSec: settings.bootstrapTokenTtlSec,
    log,
    signals,
    acme,
  });
  const reconciler = new Reconciler({
    store,
    bus,
    provider,
    intervalMs: settings.reconcileIntervalSec * 1000,
    log,
  });
  const operations = new OperationsEngine({
    store,
    bus,
    commands,
    gateway,
    vms,
    log,
    commandTtlSec: settings.commandTtlSec,
    commandTimeoutSec: settings.commandTimeoutSec,
    upgradeTimeoutSec: settings.upgradeTimeoutSec,
    guestPin,
    trustSets: trustCatchUp,
    signals,
    clock,
    artifacts,
    ...(store.dialect === "postgres" ? { syncMs: OPERATIONS_SYNC_MS } : {}),
  });
  const idlePolicy = new IdlePolicyService({ store, bus, commands, gateway, vms, log, signals });
  const eventFeed = createEventFeed(settings, store, bus, signals, log, clock);
  // One replica makes every revocation itself; several learn of each other's from the feed.
  const streams = new PrincipalStreams(signals.clustered ? eventFeed : null);

  const terminals = new TerminalService({
    store,
    bus,
    gateway,
    log,
    idleTimeoutMs: settings.terminalIdleTimeoutSec * 1000,
    detachedTimeoutMs: settings.terminalDetachedTimeoutSec * 1000,
    maxSessionsPerVm: settings.terminalMaxSessionsPerVm,
    ...(store.dialect === "postgres" ? { replicaHeartbeatMs: settings.replicaHeartbeatSec * 1000 } : {}),
    clock,
    streams,
  });
  const logs = new LogStreamService({ store, gateway });
  const cluster = createCluster({
    settings,
    store,
    replica,
    log,
    url: () => settings.replicaUrl ?? (listeningUrl ?? controllerUrl)(),
    agents: () => gateway.connectedCount,
    keySha256: guestPin?.keySha256 ?? null,
    clock,
  });
  routeSignals({ signals, store, commands, gateway, operations, idlePolicy });
  const relay = new StreamRelay({ settings, store, gateway, log, clock, replicaId: () => replica.id });

  return {
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
    signals,
    eventFeed,
    relay,
    streams,
    cluster,
    metrics,
    provider,
    artifacts,
    reconciler,
    adminToken,
    controllerUrl,
    startedAt: new Date(),
  };
}

/** The figures /metrics reads from the gateway and the store. */
function attachFleetFigures(
  metrics: Metrics,
  gateway: AgentGateway,
  store: Store,
  settings: ControllerSettings,
  log: FastifyBaseLogger,
  clock: ClusterClock,
): void {
  // Pending status writes first, so the figures are exact when read: one flush and one read of
  // each count per refresh.
  const storeFigures = new CachedFigure(
    async () => {
      await store.writer.flushChanges();
      const [byHealth, byVersion] = await Promise.all([
        store.vms.countByHealth(),
        countAgentsByVersion(store),
      ]);
      return { byHealth, byVersion };
    },
    {
      maxAgeMs: settings.metricsRefreshSec * 1000,
      onError: (error) => log.warn({ err: error }, "counting VMs by health and version for /metrics failed"),
    },
  );
  metrics.attach({
    agentsConnected: () => gateway.connectedCount,
    vmsByHealth: async () => (await storeFigures.get())?.byHealth,
    agentsByVersion: async () => (await storeFigures.get())?.byVersion,
    clockOffsetMs: () => clock.offsetMs,
  });
}
