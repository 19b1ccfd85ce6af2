/**
 * Byte streams (terminals, log follows) opened on this replica for a VM whose agent socket is
 * held by another live replica are carried to that replica's internal routes (relay-routes.ts)
 * and piped back unchanged: the owning replica does the real work (sessions, limits, audit), so
 * the client sees the same frames, records and close codes as there. A VM whose agent is here,
 * or held by no live replica, is served here as before; with SQLite there are no peers at all.
 *
 * Each relayed request is signed with the replica secret for the operator token that made it
 * (relay-auth.ts); the owner looks the token up again and checks its role itself.
 */
import http, { type IncomingMessage } from "node:http";
import https from "node:https";
import type { Socket } from "node:net";
import type { FastifyBaseLogger, FastifyReply, FastifyRequest } from "fastify";
import WebSocket from "ws";
import type { ControllerSettings } from "../../config/settings.js";
import { ERRORS, type ErrorCode, NbfError } from "../../errors.js";
import type { AgentGateway } from "../../gateway/gateway.js";
import { closeWithin } from "../../gateway/socket-close.js";
import type { Store } from "../../store/store.js";
import type { TokenRecord } from "../../store/tokens-repo.js";
import type { ClusterClock } from "../cluster-clock.js";
import { aliveSince } from "../replica.js";
import { loadReplicaSecret } from "./cluster-secret.js";
import { type EndRelayedLogs, pipeLogs } from "./log-pipe.js";
import { type Peer, findOwningPeer } from "./owner.js";
import { type PeerTrust, peerConnection, peerTrust } from "./peer-tls.js";
import { RelayVerifier, relayAuthorization } from "./relay-auth.js";
import { pipeShell } from "./shell-pipe.js";

export const INTERNAL_PREFIX = "/internal/v1";

export interface StreamRelayOptions {
  settings: ControllerSettings;
  store: Store;
  gateway: AgentGateway;
  log: FastifyBaseLogger;
  /** This replica's id, as written to `vm_status.replica_id` and `replicas.id`. */
  replicaId(): string;
  /** Relay signatures and peers' heartbeats are on the cluster's clock (cluster-clock.ts). */
  clock: ClusterClock;
  /** TCP (and TLS) connection to a peer. */
  connectTimeoutMs?: number;
  /** The peer's answer to an open; above its own deadline for the agent's answer (10 s). */
  answerTimeoutMs?: number;
}

/** What a relayed stream is for, in the offline error's words. */
export type StreamKind = "a terminal session" | "reading its logs";

const MAX_REFUSAL_BYTES = 64 * 1024;

/** A client's request for a VM's stream, already authenticated here. */
export interface RelayedRequest {
  params: { name: string };
  url: string;
  headers: FastifyRequest["headers"];
  principal: TokenRecord | null;
  raw: { socket: Socket };
}

/** The `?…` of a request URL (empty without one), passed on to the owner as it came. */
export function querySuffix(url: string): string {
  const at = url.indexOf("?");
  return at < 0 ? "" : url.slice(at);
}

export class StreamRelay {
  /** PostgreSQL only: with SQLite this replica is the whole controller. */
  readonly enabled: boolean;
  private secret: Buffer | null = null;
  private verifierInstance: RelayVerifier | null = null;
  private readonly trust: PeerTrust | null;
  private readonly closers = new Set<() => void>();
  private readonly piped = new WeakSet<WebSocket>();
  private readonly pipes = new Set<{ client: WebSocket; upstream: WebSocket }>();
  private closing = false;

  constructor(private readonly options: StreamRelayOptions) {
    this.enabled = options.store.dialect === "postgres";
    this.trust = this.enabled ? peerTrust(options.settings) : null;
  }

  async start(): Promise<void> {
    if (!this.enabled) return;
    this.secret = await loadReplicaSecret(this.options.store.db);
    this.verifierInstance = new RelayVerifier(
      this.secret,
      () => this.options.replicaId(),
      () => this.options.clock.now(),
    );
  }

  get replicaId(): string {
    return this.options.replicaId();
  }

  /** Unsent bytes held by this replica's relayed terminals (both directions), for tests and metrics. */
  bufferedBytes(): number {
    let total = 0;
    for (const pipe of this.pipes) total += pipe.client.bufferedAmount + pipe.upstream.bufferedAmount;
    return total;
  }

  /** Checks relayed requests on the internal routes (only once started, only with PostgreSQL). */
  get verifier(): RelayVerifier | null {
    return this.verifierInstance;
  }

  /** The live replica holding the VM's agent when that is not this one; null: serve it here. */
  async peerFor(vmName: string): Promise<Peer | null> {
    if (!this.enabled || this.options.gateway.capabilities(vmName)) return null;
    const peer = await findOwningPeer(
      this.options.store.db,
      vmName,
      this.options.replicaId(),
      aliveSince(this.options.settings.replicaHeartbeatSec * 1000, this.options.clock.now()),
    );
    if (peer && this.trust && !peer.url.startsWith("https:")) {
      this.options.log.warn(
        { replica: peer.id, url: peer.url },
        "this replica serves HTTPS but a peer's replica URL is not https; not relaying to it",
      );
      return null;
    }
    return peer;
  }

  /**
   * Opens the shell a client asks for on the owner (same query) and resolves with the upgraded
   * socket, paused until piped; it is dropped if the client leaves before its upgrade.
   */
  async openShell(peer: Peer, request: RelayedRequest): Promise<WebSocket> {
    const vmName = request.params.name;
    const upstream = await this.dialShell(peer, vmName, querySuffix(request.url), request.principal!);
    request.raw.socket.once("close", () => {
      if (!this.piped.has(upstream)) upstream.terminate();
    });
    return upstream;
  }

  private async dialShell(
    peer: Peer,
    vmName: string,
    search: string,
    principal: TokenRecord,
  ): Promise<WebSocket> {
    const path = `${INTERNAL_PREFIX}/vms/${encodeURIComponent(vmName)}/shell${search}`;
    const url = new URL(path, peer.url);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    const upstream = new WebSocket(url, {
      headers: { authorization: this.sign(peer, "GET", path, principal) },
      createConnection: peerConnection(this.trust, this.connectTimeoutMs, peer.keySha256) as never,
      perMessageDeflate: false,
      maxPayload: this.options.settings.maxMessageBytes,
    });
    return new Promise<WebSocket>((resolve, reject) => {
      // Our own deadline: ws's handshakeTimeout is not armed on a socket from createConnection.
      const deadline = setTimeout(() => upstream.terminate(), this.answerTimeoutMs);
      upstream.once("close", () => clearTimeout(deadline));
      upstream.once("open", () => {
        clearTimeout(deadline);
        // Nothing is read until the client's own socket is there to take it.
        upstream.pause();
        resolve(upstream);
      });
      upstream.once("unexpected-response", (_request, response) => {
        clearTimeout(deadline);
        this.warnIfRefused(peer, response);
        void readRefusal(response).then(
          (error) => {
            upstream.terminate();
            reject(error);
          },
          () => {
            upstream.terminate();
            reject(new NbfError("NBF_INTERNAL", { reason: `replica ${peer.id} refused the relay` }));
          },
        );
      });
      upstream.once("error", (error) => {
        void this.offline(peer, vmName, "a terminal session", error).then(reject, reject);
      });
    });
  }

  /** Pipes a client socket of this replica to a relayed shell until either side closes. */
  pipeShell(client: WebSocket, upstream: WebSocket): void {
    if (this.closing) {
      closeWithin(upstream, 1000, "relay closed");
      closeWithin(client, 1001, "controller shutting down");
      return;
    }
    this.piped.add(upstream);
    const pipe = { client, upstream };
    this.pipes.add(pipe);
    const close = pipeShell(client, upstream, () => {
      this.closers.delete(close);
      this.pipes.delete(pipe);
    });
    this.closers.add(close);
  }

  /**
   * Serves a log request from the owner: its answer passed on, or its refusal thrown here.
   * Resolves with what ends the client's response here.
   */
  async relayLogs(peer: Peer, request: RelayedRequest, reply: FastifyReply): Promise<EndRelayedLogs> {
    const accept = request.headers.accept;
    const response = await this.requestLogs(
      peer,
      request.params.name,
      querySuffix(request.url),
      accept,
      request.principal!,
    );
    return pipeLogs(response, reply, (close) => this.track(close));
  }

  /** Asks the owner for the log stream; resolves with its 200 response, rejects with its refusal. */
  private requestLogs(
    peer: Peer,
    vmName: string,
    search: string,
    accept: string | undefined,
    principal: TokenRecord,
  ): Promise<IncomingMessage> {
    const path = `${INTERNAL_PREFIX}/vms/${encodeURIComponent(vmName)}/logs${search}`;
    const url = new URL(path, peer.url);
    const client = url.protocol === "https:" ? https : http;
    return new Promise<IncomingMessage>((resolve, reject) => {
      const request = client.request(url, {
        method: "GET",
        headers: {
          authorization: this.sign(peer, "GET", path, principal),
          ...(accept ? { accept } : {}),
        },
        createConnection: peerConnection(this.trust, this.connectTimeoutMs, peer.keySha256) as never,
      });
      const deadline = setTimeout(
        () => request.destroy(new Error(`no answer within ${this.answerTimeoutMs} ms`)),
        this.answerTimeoutMs,
      );
      request.once("response", (response) => {
        clearTimeout(deadline);
        if (response.statusCode === 200) {
          resolve(response);
          return;
        }
        this.warnIfRefused(peer, response);
        void readRefusal(response).then(reject, () =>
          reject(new NbfError("NBF_INTERNAL", { reason: `replica ${peer.id} refused the relay` })),
        );
      });
      request.once("error", (error) => {
        clearTimeout(deadline);
        void this.offline(peer, vmName, "reading its logs", error).then(reject, reject);
      });
      request.end();
    });
  }

  private track(close: () => void): () => void {
    this.closers.add(close);
    return () => this.closers.delete(close);
  }

  /** Shutdown: relayed clients are told this replica is going away (their sessions live on). */
  close(): void {
    this.closing = true;
    for (const close of [...this.closers]) close();
    this.closers.clear();
  }

  private sign(peer: Peer, method: string, path: string, principal: TokenRecord): string {
    if (!this.secret) throw new NbfError("NBF_INTERNAL", { reason: "the stream relay was not started" });
    return relayAuthorization(
      this.secret,
      { method, url: path, target: peer.id, tokenId: principal.id },
      this.options.clock.now(),
    );
  }

  /**
   * A 401 from a peer is either a token revoked meanwhile (passed on as is) or a relay the peer
   * would not take: another secret (another database), a clock more than 60 s off, or a replica
   * URL that reaches some other replica. The operator needs to hear of the latter.
   */
  private warnIfRefused(peer: Peer, response: IncomingMessage): void {
    if (response.statusCode !== 401) return;
    this.options.log.warn(
      { replica: peer.id, url: peer.url },
      "a replica refused a relayed request as unauthenticated; if tokens were not revoked, check that each NBFLEET_REPLICA_URL reaches its own replica, that all replicas use the same database, and their clocks",
    );
  }

  /** A peer that cannot be reached holds no agent for us: the same error as an offline agent. */
  private async offline(peer: Peer, vmName: string, what: StreamKind, cause: Error): Promise<NbfError> {
    this.options.log.warn(
      { replica: peer.id, url: peer.url, vm: vmName, reason: cause.message },
      "relaying a stream to the replica holding the agent failed",
    );
    const vm = await this.options.store.vms.get(vmName);
    if (!vm) return new NbfError("NBF_VM_NOT_FOUND", { name: vmName });
    return new NbfError("NBF_AGENT_NOT_CONNECTED", {
      name: vmName,
      lastSeenAt: vm.status.lastSeenAt ?? "never",
      what,
    });
  }

  private get connectTimeoutMs(): number {
    return this.options.connectTimeoutMs ?? 3_000;
  }

  private get answerTimeoutMs(): number {
    return this.options.answerTimeoutMs ?? 15_000;
  }
}

/** The owner's HTTP refusal, as the same catalogue error here. */
async function readRefusal(response: IncomingMessage): Promise<NbfError> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_REFUSAL_BYTES) break;
    chunks.push(chunk);
  }
  response.socket?.destroy();
  let body: { error?: { code?: string; details?: Record<string, unknown> } } = {};
  try {
    body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  } catch {
    // not a catalogue error: below
  }
  const code = body.error?.code;
  if (code && Object.hasOwn(ERRORS, code)) {
    return new NbfError(code as ErrorCode, (body.error?.details ?? {}) as never);
  }
  return new NbfError("NBF_INTERNAL", { reason: `a replica answered the relay with ${response.statusCode}` });
}
