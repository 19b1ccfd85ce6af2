/**
 * One agent connection: its identity once welcomed, what it last reported (the live state the
 * API serves for a connected VM), liveness, and a send queue that stops writing into a socket
 * that is not draining.
 */
import {
  CloseCode,
  type HealthReport,
  type NotebookState,
  type NotebookStatus,
  type OverallHealth,
} from "@nbfleet/shared";
import WebSocket from "ws";
import { KeptHealth } from "./details.js";
import { closeWithin } from "./socket-close.js";

const HIGH_WATER_BYTES = 256 * 1024;
const MAX_QUEUED_BYTES = 4 * 1024 * 1024;
/** Close code for a peer that does not read what it is sent ("try again later"). */
export const CLOSE_SLOW_CONSUMER = CloseCode.tryLater;

let sessionsMade = 0;

export class AgentSession {
  /** Tells this connection from the agent's earlier and later ones (unique in this process). */
  readonly serial = ++sessionsMade;
  vmName: string | null = null;
  /** Set when this session must not write its disconnect (replaced, or its VM deleted). */
  retired = false;
  answeredPing = true;
  missedPings = 0;
  /** Whether the agent sent a message (not only a pong) since the last ping round. */
  spoke = false;
  /** Whether the last ping round sent this session a ping (see AgentGateway.tick). */
  pingedLastRound = false;
  lastSeenMs = Date.now();
  lastPersistedMs = 0;
  /** Which ping bucket the session is in (see AgentGateway.tick). */
  bucket = 0;
  connectedAt = "";
  agentInfo: string | null = null;
  /** The agent's version from its hello. */
  agentVersion: string | null = null;
  /** From the hello: the commands and streams the agent serves. */
  capabilities: readonly string[] = [];
  notebook: NotebookStatus | null = null;
  /** The agent's latest health report (its timestamps kept as numbers; see KeptHealth). */
  readonly healthReport = new KeptHealth();
  health: OverallHealth = "unknown";
  /** The report changed in ways the store is not queried by (see AgentGateway.applyState). */
  detailsDirty = false;
  /** The certificate expiry last put for the store (queried by `certExpiresWithinDays`). */
  certNotAfterPut: string | null = null;
  notebookState: NotebookState | null = null;
  private queue: string[] | null = null;
  private queuedBytes = 0;
  private drainScheduled = false;

  constructor(readonly ws: WebSocket) {}

  /** Bytes queued here and in the socket, not yet written to the network. */
  get backlog(): number {
    return this.queuedBytes + this.ws.bufferedAmount;
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Queues a message; false when the socket is gone or the peer is too slow (then closed). */
  send(message: unknown): boolean {
    if (!this.open) return false;
    const data = JSON.stringify(message);
    if (this.queue === null && this.ws.bufferedAmount < HIGH_WATER_BYTES) {
      this.ws.send(data);
      return true;
    }
    this.queue ??= [];
    this.queue.push(data);
    this.queuedBytes += data.length;
    if (this.queuedBytes > MAX_QUEUED_BYTES) {
      this.close(CLOSE_SLOW_CONSUMER, "send queue overflow: the agent is not reading");
      return false;
    }
    this.drain();
    return true;
  }

  /** Sends the close frame; the socket is destroyed shortly after, whether the peer answers or not. */
  close(code: number, reason: string): void {
    closeWithin(this.ws, code, reason);
  }

  private drain(): void {
    while (this.queue && this.queue.length > 0 && this.ws.bufferedAmount < HIGH_WATER_BYTES) {
      if (!this.open) return;
      const data = this.queue.shift()!;
      this.queuedBytes -= data.length;
      this.ws.send(data);
    }
    if (this.queue && this.queue.length === 0) {
      this.queue = null;
      return;
    }
    if (this.queue && !this.drainScheduled) {
      this.drainScheduled = true;
      setTimeout(() => {
        this.drainScheduled = false;
        this.drain();
      }, 10).unref();
    }
  }
}
