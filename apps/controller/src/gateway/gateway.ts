import type {} from "@fastify/websocket";
/**
 * The agent gateway: `GET /v1/agent/connect` (WebSocket). An agent authenticates with
 * `Authorization: Bearer <credential or bootstrap token>` at the HTTP upgrade (a secret the
 * controller never issued is answered 401 and never upgraded), sends a hello with its whole
 * state, and is welcomed with its VM name, the report interval, the features it may use (agent
 * messages beyond the basics) and (when it came with a bootstrap token) its new credential. From then on it reports state and events and answers
 * commands. A second connection for the same VM replaces the first. Liveness is ping/pong on one
 * shared ticker: an agent that misses two pings is disconnected; one that sent a message since
 * the last round is pinged only every other round.
 */
import {
  AGENT_CONNECT_PATH,
  type AgentMessage,
  type AgentState,
  type AgentStreamMessage,
  CloseCode,
  type CommandMessage,
  type ControllerStreamMessage,
  FEATURE_PTY_INPUT_FLOW,
  type HealthReport,
  type HelloMessage,
  type NotebookStatus,
  PROTOCOL_VERSION,
  type WelcomeMessage,
} from "@nbfleet/shared";
import { parseAgentFrame, readEnvelope } from "@nbfleet/shared/frames";
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type WebSocket from "ws";
import type { ArtifactCatalog } from "../artifacts/catalog.js";
import { hashSecret, newAgentCredential } from "../auth/secrets.js";
import type { CommandLink, CommandService } from "../commands/service.js";
import { NbfError } from "../errors.js";
import type { EventBus } from "../events/bus.js";
import { bootstrapExpiry } from "../fleet/bootstrap-token.js";
import type { Metrics } from "../metrics/metrics.js";
import { certificateNotAfter } from "../store/cert-not-after.js";
import { newId } from "../store/ids.js";
import type { Store } from "../store/store.js";
import { batchedLookup } from "../store/turn-batch.js";
import type { StatusRow } from "../store/vms-repo.js";
import { type AgentAdmission, type AgentIdentity, admitAgent } from "./agent-auth.js";
import { renewed, sameDetails } from "./details.js";
import { refusalFromCatalog } from "./protocol-refusal.js";
import { AgentSession } from "./session.js";
import { SourceLimiter, type SourceLimiterOptions } from "./source-limiter.js";

/**
 * Authenticated handshakes (upgraded, not yet welcomed) allowed at once; more are told to come
 * back later. Unauthenticated upgrades never get this far.
 */
const MAX_PENDING_HANDSHAKES = 4096;
const MAX_EARLY_FRAMES = 8;
/**
 * The ping ticker visits one of (at most) this many buckets of sessions per tick: at 10,000
 * agents and a 15 s interval, 20 pings every 30 ms rather than a burst of hundreds that holds
 * up every request behind it...
 */
const PING_BUCKETS = 500;
/** ...and ticks no more often than this. */
const MIN_TICK_MS = 10;
/** Messages of one connection queued for handling; a flood beyond this is a policy violation. */
const MAX_IN_FLIGHT = 1024;

export interface GatewayOptions {
  store: Store;
  bus: EventBus;
  commands: CommandService;
  metrics: Metrics;
  log: FastifyBaseLogger;
  reportIntervalSec: number;
  pingIntervalMs: number;
  helloTimeoutMs: number;
  /** An exchanged bootstrap token stays good this long for another exchange (a lost welcome). */
  bootstrapTokenTtlSec: number;
  /** Failed authentications allowed per source address (see SourceLimiter). */
  sourceLimits?: SourceLimiterOptions;
  /**
   * This replica's id, recorded in `vm_status.replica_id` for the agents it holds (PostgreSQL);
   * null with SQLite, where the controller is one replica.
   */
  replicaId?: string | null;
  /** Names the agent to fetch when refusing an agent of another protocol major. */
  artifacts?: Pick<ArtifactCatalog, "newest">;
  /** Told of every agent welcomed, with its hello (see operations/trust-catch-up.ts). */
  onHello?: (vmName: string, hello: HelloMessage) => void;
}

export interface LiveAgent {
  connectedAt: string;
  lastSeenAt: string;
  /** What the agent last reported: newer than the store's copy, which is written behind. */
  notebook: NotebookStatus | null;
  healthReport: HealthReport | null;
  /** The agent's version from its hello. */
  version: string | null;
}

/** Called with every state an agent reports (hello included), in arrival order. */
export type StateListener = (vmName: string, state: AgentState) => void;

/**
 * Terminal sessions and log streams: the agent's stream messages, in arrival order, and the end
 * of the connection that carried them (its streams end with it, on both sides).
 */
export interface StreamSink {
  onAgentMessage(vmName: string, message: AgentStreamMessage): void;
  onAgentGone(vmName: string, reason: string): void;
}

export class AgentGateway implements CommandLink {
  private readonly sessions = new Map<string, AgentSession>();
  private readonly stateListeners = new Set<StateListener>();
  private readonly streamSinks = new Set<StreamSink>();
  /**
   * Connections between the upgrade and the welcome (not yet in `sessions`). The shutdown ends
   * them too: one left open would hold the HTTP server's close, which waits for every socket.
   */
  private readonly handshaking = new Set<AgentSession>();
  private ticker: NodeJS.Timeout | undefined;
  private tickCount = 0;
  private nextBucket = 0;
  /** An unchanged state is stored at most this often (the API reads live link state from memory). */
  private readonly persistEveryMs: number;
  private readonly buckets: number;
  /** The welcomed sessions of each ping bucket, so a tick touches only its own. */
  private readonly bucketSessions: Set<AgentSession>[];
  private closing = false;
  /** What the upgrade hook decided about each admitted request, for its WebSocket handler. */
  private readonly admissions = new WeakMap<FastifyRequest, AgentAdmission>();
  private readonly failures: SourceLimiter;
  /**
   * The two reads of every connect, shared by the agents connecting in one event-loop turn:
   * after a replica dies its 10,000 agents arrive at the others within seconds, and one query
   * per secret and per VM each waited for a pooled connection.
   */
  private readonly secrets = {
    find: batchedLookup((hashes: string[]) => this.options.store.agentSecrets.findMany(hashes)),
  };
  private readonly vmExists = batchedLookup(async (names: string[]) => {
    const existing = await this.options.store.vms.existing(names);
    return new Map([...existing].map((name) => [name, true]));
  });

  constructor(private readonly options: GatewayOptions) {
    this.failures = new SourceLimiter(options.sourceLimits);
    this.persistEveryMs = Math.max(options.pingIntervalMs * 2, options.reportIntervalSec * 4000);
    this.buckets = Math.max(1, Math.min(PING_BUCKETS, Math.floor(options.pingIntervalMs / MIN_TICK_MS)));
    this.bucketSessions = Array.from({ length: this.buckets }, () => new Set<AgentSession>());
  }

  register(app: FastifyInstance): void {
    app.get(
      AGENT_CONNECT_PATH,
      {
        websocket: true,
        config: { role: "agent" },
        logLevel: "warn",
        onRequest: (request, reply) => this.admit(request, reply),
      },
      (socket: WebSocket, request) => this.accept(socket, this.admissions.get(request)),
    );
  }

  /**
   * Authenticates an upgrade before it becomes a WebSocket. A refused one is answered 401 and
   * its socket ended at once; from an address that keeps failing, it is dropped unanswered.
   */
  private async admit(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    // A plain GET (no upgrade) is answered by the route itself.
    if (!request.ws) return;
    const admission = await admitAgent(this.secrets, request.headers.authorization);
    if (admission.kind !== "refused") {
      this.admissions.set(request, admission);
      return;
    }
    if (!this.failures.fail(request.socket.remoteAddress ?? "unknown")) {
      reply.hijack();
      request.raw.socket.destroy();
      return;
    }
    throw new NbfError(admission.code, { reason: admission.reason });
  }

  start(): void {
    this.ticker ??= setInterval(() => this.tick(), this.options.pingIntervalMs / this.buckets);
    this.ticker.unref();
  }

  get connectedCount(): number {
    return this.sessions.size;
  }

  isConnected(vmName: string): boolean {
    return this.sessions.get(vmName)?.open ?? false;
  }

  /** The VMs whose agent this controller holds now. */
  connectedNames(): string[] {
    return [...this.sessions.keys()];
  }

  live(vmName: string): LiveAgent | undefined {
    const session = this.sessions.get(vmName);
    if (!session?.open) return undefined;
    return {
      connectedAt: session.connectedAt,
      lastSeenAt: new Date(session.lastSeenMs).toISOString(),
      notebook: session.notebook,
      healthReport: session.healthReport.shared,
      version: session.agentVersion,
    };
  }

  /** Subscribes to agents' state reports (health gates, the idle policy); returns the unsubscribe. */
  onState(listener: StateListener): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  send(vmName: string, message: CommandMessage): boolean {
    return this.sessions.get(vmName)?.send(message) ?? false;
  }

  connectionOf(vmName: string): number | undefined {
    const session = this.sessions.get(vmName);
    return session?.open ? session.serial : undefined;
  }

  /** Receives stream messages and connection ends; returns the unsubscribe. */
  onStreams(sink: StreamSink): () => void {
    this.streamSinks.add(sink);
    return () => this.streamSinks.delete(sink);
  }

  /** Sends a stream message on the VM's current connection; false when there is none. */
  sendStream(vmName: string, message: ControllerStreamMessage): boolean {
    return this.sessions.get(vmName)?.send(message) ?? false;
  }

  /** What the connected agent said it can do in its hello; undefined when it is not connected. */
  /**
   * Bytes sent to the VM's connection and not yet written to the network (0 without one): a
   * terminal paces its client's input by it (terminal/input-flow.ts).
   */
  backlog(vmName: string): number {
    const session = this.sessions.get(vmName);
    return session?.open ? session.backlog : 0;
  }

  capabilities(vmName: string): readonly string[] | undefined {
    const session = this.sessions.get(vmName);
    return session?.open ? session.capabilities : undefined;
  }

  /** Ends a VM's connection without recording a disconnect (the VM is being deleted). */
  retire(vmName: string, reason: string): void {
    const session = this.sessions.get(vmName);
    if (!session) return;
    session.retired = true;
    this.sessions.delete(vmName);
    session.close(CloseCode.unauthorized, reason);
    this.streamsEnded(vmName, reason);
  }

  /** Closes every connection (agents will reconnect to the next controller) and writes their status. */
  close(): void {
    this.closing = true;
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
    for (const session of [...this.sessions.values()]) {
      this.sessions.delete(session.vmName!);
      this.writeStatus(session, "disconnected");
      session.retired = true;
      session.close(CloseCode.goingAway, "controller shutting down");
      this.streamsEnded(session.vmName!, "the controller is shutting down");
    }
    for (const session of this.handshaking) session.close(CloseCode.goingAway, "controller shutting down");
    this.handshaking.clear();
  }

  private accept(ws: WebSocket, admission: AgentAdmission | undefined): void {
    const session = new AgentSession(ws);
    const { metrics, log } = this.options;
    if (this.closing) {
      session.close(CloseCode.goingAway, "controller shutting down");
      return;
    }
    if (admission?.kind !== "admitted") {
      session.close(
        CloseCode.unauthorized,
        admission?.kind === "expired" ? admission.reason : "not authenticated",
      );
      return;
    }
    const { identity } = admission;
    if (this.handshaking.size >= MAX_PENDING_HANDSHAKES) {
      session.close(CloseCode.tryLater, "too many agents connecting at once; retry with backoff");
      return;
    }
    this.handshaking.add(session);
    const endHandshake = () => {
      this.handshaking.delete(session);
      clearTimeout(helloTimer);
    };
    let failed = false;
    // Messages of one connection are handled strictly in order (an ack before its result, the
    // welcome before the first report); `inFlight` bounds that queue.
    let inFlight = 0;
    const fail = (code: number, reason: string) => {
      failed = true;
      // No longer a handshake in progress, whether or not the peer ever answers the close.
      endHandshake();
      log.debug({ vm: session.vmName, code, reason }, "closing agent connection");
      session.close(code, reason);
    };
    const helloTimer = setTimeout(
      () => fail(CloseCode.policyViolation, "no hello within the hello timeout"),
      this.options.helloTimeoutMs,
    );
    // Messages that arrived while another was being handled, in order. Null while none wait: a
    // connection that reports now and then holds no promise or array from one report to the next
    // (with 10,000 agents, such leftovers were copied by every scavenge and promoted).
    let waiting: AgentMessage[] | null = null;
    let handling = false;

    const process = async (message: AgentMessage): Promise<void> => {
      if (failed) return;
      if (session.vmName === null) {
        if (message.type !== "hello")
          return fail(CloseCode.policyViolation, "the first message must be a hello");
        return this.welcome(session, identity, message, endHandshake);
      }
      if (message.type === "hello")
        return fail(CloseCode.policyViolation, "hello sent twice on one connection");
      return this.handle(session, message);
    };

    const handleOne = async (message: AgentMessage): Promise<void> => {
      try {
        await process(message);
      } catch (error) {
        log.error({ err: error, vm: session.vmName }, "agent message failed");
        if (session.vmName === null) fail(CloseCode.internalError, "internal error during the handshake");
        // The agent sent its result once: its next connection is what delivers it again.
        else if (message.type === "result")
          fail(CloseCode.internalError, "its result could not be stored; it is asked for again");
      } finally {
        inFlight--;
      }
    };
    const handleInOrder = async (first: AgentMessage): Promise<void> => {
      let next: AgentMessage | undefined = first;
      while (next !== undefined) {
        await handleOne(next);
        next = waiting?.shift();
        if (waiting?.length === 0) waiting = null;
      }
      handling = false;
    };

    ws.on("message", (data, isBinary) => {
      if (failed) return;
      session.lastSeenMs = Date.now();
      session.answeredPing = true;
      session.spoke = true;
      session.missedPings = 0;
      const parsed = parseAgentFrame(data as Buffer, isBinary);
      if (!parsed.ok) {
        const { artifacts } = this.options;
        if (parsed.problem !== "other-major" || !artifacts) return fail(parsed.code, parsed.reason);
        // Nothing more is read from it; the close names the agent that speaks this protocol.
        failed = true;
        const envelope = readEnvelope(data as Buffer, isBinary);
        const spoken = !envelope.ok && envelope.problem === "other-major" ? envelope.v : "?";
        void refusalFromCatalog(spoken, artifacts).then((reason) => fail(parsed.code, reason));
        return;
      }
      metrics.countAgentMessage(parsed.message.type);
      const limit = session.vmName === null ? MAX_EARLY_FRAMES : MAX_IN_FLIGHT;
      if (inFlight >= limit)
        return fail(CloseCode.policyViolation, "too many messages without waiting for answers");
      inFlight++;
      if (handling) {
        if (waiting) waiting.push(parsed.message);
        else waiting = [parsed.message];
        return;
      }
      handling = true;
      // Not in this turn: the frames that came with this one are counted (and may fail the
      // connection) before anything of it is handled.
      const first = parsed.message;
      queueMicrotask(() => void handleInOrder(first));
    });
    ws.on("pong", () => {
      session.lastSeenMs = Date.now();
      session.answeredPing = true;
      session.missedPings = 0;
    });
    ws.on("close", (code) => {
      endHandshake();
      metrics.agentCloses.inc({ code: String(code) });
      this.onClose(session, code);
    });
  }

  private async welcome(
    session: AgentSession,
    identity: AgentIdentity,
    hello: HelloMessage,
    endHandshake: () => void,
  ): Promise<void> {
    const { store, bus, commands } = this.options;
    let credential: string | undefined;
    if (identity.bootstrapHash !== null) {
      credential = newAgentCredential();
      // Exchanged after the hello proved the agent speaks our protocol. The token is not spent
      // yet: if this welcome never reaches the agent, its next attempt exchanges it again.
      const vmName = await store.agentSecrets.exchangeBootstrap(
        identity.bootstrapHash,
        hashSecret(credential),
        bootstrapExpiry(this.options.bootstrapTokenTtlSec),
      );
      if (vmName === undefined) {
        return session.close(CloseCode.unauthorized, "bootstrap token replaced or already used");
      }
    } else if (identity.unconfirmedCredentialHash !== null) {
      // The agent holds the credential it was given: the bootstrap token has done its job.
      await store.agentSecrets.confirmCredential(identity.unconfirmedCredentialHash);
    }
    if (!session.open) return;
    if (!(await this.vmExists(identity.vmName))) {
      return session.close(CloseCode.unauthorized, `VM ${identity.vmName} no longer exists`);
    }
    // The shutdown may have come while this connection waited for the store; it closed it.
    if (!session.open) return;
    endHandshake();
    const previous = this.sessions.get(identity.vmName);
    if (previous) {
      previous.retired = true;
      previous.close(CloseCode.replaced, "replaced by a newer connection of the same VM");
      this.streamsEnded(identity.vmName, "the agent connected again (the old connection was replaced)");
    }
    session.vmName = identity.vmName;
    session.bucket = this.nextBucket++ % this.buckets;
    this.bucketSessions[session.bucket]!.add(session);
    session.connectedAt = new Date().toISOString();
    session.agentInfo = JSON.stringify(hello.agent);
    session.agentVersion = hello.agent.version;
    session.capabilities = hello.capabilities;
    this.sessions.set(identity.vmName, session);
    const welcome: WelcomeMessage = {
      v: PROTOCOL_VERSION,
      id: newId("msg"),
      type: "welcome",
      vmName: identity.vmName,
      reportIntervalSec: this.options.reportIntervalSec,
      ...(credential ? { credential } : {}),
      features: [FEATURE_PTY_INPUT_FLOW],
    };
    session.send(welcome);
    bus.emit({
      vmName: identity.vmName,
      kind: "agent.connected",
      message: `agent ${hello.agent.version} on ${hello.agent.hostname} connected${credential ? " (bootstrap)" : ""}`,
      data: { agent: hello.agent, capabilities: hello.capabilities },
    });
    this.applyState(session, hello.state, true);
    // What the agent is owed goes out beside its next frames, not ahead of them: held in this
    // connection's queue, a read of the store (a round trip on PostgreSQL) let a burst of frames
    // right after the welcome count against MAX_IN_FLIGHT.
    // onHello may queue a command: it goes out after the ones that waited for the agent.
    void commands
      .onAgentReady(identity.vmName)
      .catch((error) => {
        this.options.log.error({ err: error, vm: identity.vmName }, "delivering queued commands failed");
      })
      .then(() => this.options.onHello?.(identity.vmName, hello));
  }

  private async handle(session: AgentSession, message: AgentMessage): Promise<void> {
    const vmName = session.vmName!;
    switch (message.type) {
      case "state":
        return this.applyState(session, message.state, false);
      case "event":
        this.options.bus.emit({
          vmName,
          source: "agent",
          kind: message.event.kind,
          level: message.event.level,
          message: message.event.message,
          data: message.event.data ?? null,
          at: message.event.at,
        });
        return;
      case "ack":
        return this.options.commands.onAck(vmName, message.commandId);
      case "progress":
        return this.options.commands.onProgress(vmName, message.commandId, message.message);
      case "result":
        return this.options.commands.onResult(vmName, message);
      case "pty.opened":
      case "pty.output":
      case "pty.inputFlow":
      case "pty.exit":
      case "logs.data":
      case "logs.end":
        for (const sink of this.streamSinks) sink.onAgentMessage(vmName, message);
        return;
      default:
        return;
    }
  }

  private applyState(session: AgentSession, state: HelloMessage["state"], first: boolean): void {
    const vmName = session.vmName!;
    // A report still queued when its connection closed must not mark the VM connected again.
    if (this.sessions.get(vmName) !== session) return;
    const { bus } = this.options;
    const previousHealth = first ? null : session.health;
    const previousNotebook = session.notebookState;
    const detailsChanged = !sameDetails(session.notebook, session.healthReport.details, state);
    session.notebook = renewed(session.notebook, state.notebook);
    session.healthReport.keep(state.health);
    session.health = state.health.status;
    session.notebookState = state.notebook.state;
    if (previousNotebook !== null && previousNotebook !== state.notebook.state) {
      bus.emit({
        vmName,
        kind: "notebook.state",
        message: `notebook ${previousNotebook} → ${state.notebook.state}`,
        data: { from: previousNotebook, to: state.notebook.state, pid: state.notebook.pid },
      });
    }
    if (previousHealth !== state.health.status) {
      bus.emit({
        vmName,
        kind: "vm.health",
        level:
          state.health.status === "healthy" ? "info" : state.health.status === "degraded" ? "warn" : "error",
        message: `health ${previousHealth ?? "unknown"} → ${state.health.status}${
          state.health.reasons.length ? `: ${state.health.reasons.join("; ")}` : ""
        }`,
        data: { from: previousHealth ?? "unknown", to: state.health.status },
      });
    }
    // The store is queried by health status and by certificate expiry: a change of either is
    // written now. Other changes (notebook pid and restarts, check messages) are served live
    // from this session and written at the session's next ping round, so a burst of reports (a
    // restart sends several; a bulk operation, thousands) costs one write per VM.
    const statusChanged = first || previousHealth !== state.health.status;
    const certificateChanged = certificateNotAfter(state.notebook) !== session.certNotAfterPut;
    if (statusChanged || certificateChanged || Date.now() - session.lastPersistedMs >= this.persistEveryMs)
      this.writeStatus(session, "connected", statusChanged);
    else if (detailsChanged) session.detailsDirty = true;
    for (const listener of this.stateListeners) {
      try {
        listener(vmName, state);
      } catch (error) {
        this.options.log.error({ err: error, vm: vmName }, "state listener failed");
      }
    }
  }

  private onClose(session: AgentSession, code: number): void {
    this.bucketSessions[session.bucket]!.delete(session);
    const vmName = session.vmName;
    if (vmName === null || session.retired || this.sessions.get(vmName) !== session) return;
    this.sessions.delete(vmName);
    this.writeStatus(session, "disconnected");
    this.streamsEnded(vmName, `the agent disconnected (close code ${code})`);
    this.options.bus.emit({
      vmName,
      kind: "agent.disconnected",
      level: "warn",
      message: `agent disconnected (close code ${code})`,
      data: { code },
    });
  }

  private streamsEnded(vmName: string, reason: string): void {
    for (const sink of this.streamSinks) {
      try {
        sink.onAgentGone(vmName, reason);
      } catch (error) {
        this.options.log.error({ err: error, vm: vmName }, "stream sink failed");
      }
    }
  }

  /** `changed`: what a query by status finds changes (see WriteBehind.flushChanges); not for a routine refresh. */
  private writeStatus(session: AgentSession, status: "connected" | "disconnected", changed = true): void {
    const now = Date.now();
    session.lastPersistedMs = now;
    session.detailsDirty = false;
    const healthReport = session.healthReport.report;
    const row: StatusRow = {
      vm_name: session.vmName!,
      agent_status: status,
      last_seen_at: new Date(session.lastSeenMs).toISOString(),
      connected_at: session.connectedAt,
      agent_info: session.agentInfo,
      notebook: session.notebook && JSON.stringify(session.notebook),
      health: status === "connected" ? session.health : "unknown",
      health_report: healthReport && JSON.stringify(healthReport),
      updated_at: new Date(now).toISOString(),
      // Who wrote it: the upsert keeps it only while connected, and lets no stale row win.
      replica_id: this.options.replicaId ?? null,
      cert_not_after: certificateNotAfter(session.notebook),
    };
    // A renewed certificate changes what `certExpiresWithinDays` finds, like a new health status.
    const certNotAfter = row.cert_not_after ?? null;
    const certChanged = certNotAfter !== session.certNotAfterPut;
    session.certNotAfterPut = certNotAfter;
    this.options.store.writer.putStatus(row, changed || certChanged);
  }

  /**
   * Each session is visited once per ping interval, but the fleet is split into buckets
   * visited one per tick, so 10,000 pings (and their status writes) never land at once.
   */
  private tick(): void {
    const now = Date.now();
    const members = this.bucketSessions[this.tickCount++ % this.buckets]!;
    for (const session of members) {
      // Replaced or retired, its close still on the way: no longer this VM's connection.
      if (this.sessions.get(session.vmName!) !== session) {
        members.delete(session);
        continue;
      }
      // An agent that sent a message since the last round (a report, a result) is alive and
      // is not pinged again, unless the last round skipped it too: one reporting every
      // interval is pinged every other round, half the frames each way at 10,000 agents,
      // and still hears from us within 2 intervals (it drops a link silent for 3 of its own).
      // A quiet agent is pinged every round. Only silence after a ping is a miss.
      const heard = session.answeredPing;
      if (!heard && session.pingedLastRound && ++session.missedPings >= 2) {
        session.ws.terminate();
        continue;
      }
      const ping = !session.spoke || !session.pingedLastRound;
      session.answeredPing = false;
      session.spoke = false;
      session.pingedLastRound = ping;
      if (ping) session.ws.ping();
      // lastSeenAt reaches the store at least this often even when nothing else changes.
      if (session.detailsDirty || now - session.lastPersistedMs >= this.persistEveryMs)
        this.writeStatus(session, "connected", false);
    }
  }
}
