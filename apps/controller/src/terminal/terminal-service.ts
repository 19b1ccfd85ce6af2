/**
 * Terminal sessions of the whole fleet: opens them on an agent (`pty.open`, answered by
 * `pty.opened` or a `pty.exit` with the reason), routes the agent's output and exit to them,
 * ends them with the agent's connection, enforces the per-VM cap, and keeps the audit log —
 * one `terminal_sessions` row per session (who, which VM, when, how long, how it ended) plus
 * `terminal.opened` / `terminal.closed` events (without the command, which only admins see).
 * A session that ended while no client was attached lingers briefly, so a client that lost
 * its connection can still fetch the end of the output and the exit status.
 */
import {
  type AgentStreamMessage,
  CAPABILITY_PTY,
  PROTOCOL_VERSION,
  TerminalCloseCode,
  type TerminalSessionView,
} from "@nbfleet/shared";
import type { FastifyBaseLogger } from "fastify";
import type WebSocket from "ws";
import type { PrincipalStreams, TrackedStream } from "../auth/principal-streams.js";
import type { ClusterClock } from "../cluster/cluster-clock.js";
import { aliveSince } from "../cluster/replica.js";
import { NbfError } from "../errors.js";
import type { EventBus } from "../events/bus.js";
import type { AgentGateway, StreamSink } from "../gateway/gateway.js";
import { closeWithin } from "../gateway/socket-close.js";
import { newId } from "../store/ids.js";
import type { Store } from "../store/store.js";
import type { TokenRecord } from "../store/tokens-repo.js";
import { type EndReason, TerminalSession } from "./terminal-session.js";

export interface TerminalServiceOptions {
  store: Store;
  bus: EventBus;
  gateway: AgentGateway;
  log: FastifyBaseLogger;
  idleTimeoutMs: number;
  detachedTimeoutMs: number;
  maxSessionsPerVm: number;
  /** How long the agent may take to start the process. */
  openTimeoutMs?: number;
  /** With several replicas (PostgreSQL): their heartbeat interval, to tell the live ones. */
  replicaHeartbeatMs?: number;
  /** The time replicas compare (cluster-clock.ts). */
  clock: ClusterClock;
  /** A session is ended, its process killed, when the token that opened it is revoked. */
  streams: PrincipalStreams;
}

export interface OpenRequest {
  vmName: string;
  principal: TokenRecord;
  tty: boolean;
  command: string | null;
  cols: number;
  rows: number;
}

const MAX_LINGER_MS = 60_000;

export class TerminalService implements StreamSink {
  private readonly sessions = new Map<string, TerminalSession>();
  private readonly writes = new Set<Promise<unknown>>();
  private readonly trackedByToken = new Map<string, TrackedStream>();
  private readonly unsubscribe: () => void;
  private closing = false;

  constructor(private readonly options: TerminalServiceOptions) {
    this.unsubscribe = options.gateway.onStreams(this);
  }

  /**
   * Sessions left open by a previous controller process did not survive it: close their rows.
   * With several replicas, only those no live replica holds (the others' sessions go on).
   */
  async start(): Promise<void> {
    const { terminalSessions } = this.options.store;
    const now = new Date().toISOString();
    const heartbeatMs = this.options.replicaHeartbeatMs;
    const closed =
      heartbeatMs === undefined
        ? await terminalSessions.closeAbandoned(now, "controller_stopped")
        : await terminalSessions.closeOrphaned(
            now,
            "controller_stopped",
            aliveSince(heartbeatMs, this.options.clock.now()),
          );
    if (closed > 0)
      this.options.log.warn(`closed ${closed} terminal session audit rows a previous run left open`);
  }

  /** Live (not ended) sessions of a VM. */
  liveCount(vmName: string): number {
    let count = 0;
    for (const session of this.sessions.values())
      if (session.vmName === vmName && session.state !== "ended") count++;
    return count;
  }

  async open(request: OpenRequest): Promise<TerminalSession> {
    const { store, gateway } = this.options;
    const { vmName } = request;
    const vm = await store.vms.require(vmName);
    const capabilities = gateway.capabilities(vmName);
    if (!capabilities) {
      throw new NbfError("NBF_AGENT_NOT_CONNECTED", {
        name: vmName,
        lastSeenAt: vm.status.lastSeenAt ?? "never",
        what: "a terminal session",
      });
    }
    if (!capabilities.includes(CAPABILITY_PTY)) {
      throw new NbfError("NBF_AGENT_UNSUPPORTED", {
        name: vmName,
        capability: "terminal sessions (pty)",
        offered: capabilities.join(", ") || "nothing",
      });
    }
    const live = this.liveCount(vmName);
    if (live >= this.options.maxSessionsPerVm) {
      throw new NbfError("NBF_TERMINAL_LIMIT", {
        name: vmName,
        count: live,
        limit: this.options.maxSessionsPerVm,
      });
    }
    const id = newId("trm");
    const session = new TerminalSession(
      {
        id,
        vmName,
        owner: { id: request.principal.id, name: request.principal.name },
        tty: request.tty,
        command: request.command,
        cols: request.cols,
        rows: request.rows,
      },
      {
        toAgent: (body) =>
          gateway.sendStream(vmName, { v: PROTOCOL_VERSION, id: newId("msg"), ...body } as never),
        agentBacklog: () => gateway.backlog(vmName),
        ended: (ended) => this.onEnded(ended),
      },
      { idleMs: this.options.idleTimeoutMs, detachedMs: this.options.detachedTimeoutMs },
    );
    this.sessions.set(id, session);
    this.endWithItsToken(session, request.principal);
    await store.terminalSessions.insert(auditRecord(session));
    const sent = gateway.sendStream(vmName, {
      v: PROTOCOL_VERSION,
      id: newId("msg"),
      type: "pty.open",
      session: id,
      tty: request.tty,
      cols: request.cols,
      rows: request.rows,
      ...(request.command !== null ? { command: request.command } : {}),
    });
    if (!sent) session.agentGone(`the agent of VM ${vmName} disconnected`);
    const timeoutMs = this.options.openTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), timeoutMs);
    });
    try {
      const outcome = await Promise.race([session.opened.then(() => "opened" as const), timedOut]);
      if (outcome === "timeout") {
        const what = request.command === null ? "a terminal open" : "an exec";
        session.stop(
          "open_failed",
          "NBF_AGENT_NO_ANSWER",
          `no answer to ${what}`,
          TerminalCloseCode.openFailed,
        );
        throw new NbfError("NBF_AGENT_NO_ANSWER", { name: vmName, what, seconds: timeoutMs / 1000 });
      }
    } catch (error) {
      if (error instanceof NbfError) throw error;
      const { code, message } = error as { code?: string; message: string };
      if (code === "NBF_AGENT_NOT_CONNECTED") {
        throw new NbfError("NBF_AGENT_NOT_CONNECTED", {
          name: vmName,
          lastSeenAt: "just now",
          what: "a terminal session",
        });
      }
      throw new NbfError("NBF_TERMINAL_OPEN_FAILED", {
        name: vmName,
        what: request.command === null ? "login shell" : "command",
        reason: `${message} [${code ?? "NBF_INTERNAL"}]`,
        agentCode: code ?? null,
      });
    } finally {
      clearTimeout(timer);
    }
    this.options.bus.emit({
      vmName,
      kind: "terminal.opened",
      message: `${session.kind === "shell" ? "terminal session" : "exec session"} ${id} opened by token ${session.owner.name}`,
      data: {
        session: id,
        kind: session.kind,
        tty: session.tty,
        tokenId: session.owner.id,
        tokenName: session.owner.name,
      },
    });
    return session;
  }

  /** A session to attach to again: only the token that opened it may. */
  find(sessionId: string, vmName: string, principal: TokenRecord): TerminalSession {
    const session = this.sessions.get(sessionId);
    if (!session || session.vmName !== vmName || session.owner.id !== principal.id) {
      throw new NbfError("NBF_TERMINAL_SESSION_NOT_FOUND", { session: sessionId, name: vmName });
    }
    return session;
  }

  attach(session: TerminalSession, ws: WebSocket, size?: { cols: number; rows: number }): void {
    if (this.closing) {
      closeWithin(ws, TerminalCloseCode.goingAway, "controller shutting down");
      return;
    }
    session.attach(ws, size);
  }

  list(filter: { vmName?: string; before?: string; limit: number }): Promise<TerminalSessionView[]> {
    return this.options.store.terminalSessions.list(filter);
  }

  onAgentMessage(vmName: string, message: AgentStreamMessage): void {
    if (message.type === "logs.data" || message.type === "logs.end") return;
    const session = this.sessions.get(message.session);
    // Only the VM a session belongs to can speak for it.
    if (!session || session.vmName !== vmName) return;
    switch (message.type) {
      case "pty.opened":
        session.onOpened(message.pid);
        return;
      case "pty.output":
        session.onOutput(Buffer.from(message.data, "base64"), message.stream);
        return;
      case "pty.inputFlow":
        session.onInputFlow(message.paused);
        return;
      case "pty.exit":
        session.onExit(message.exitCode, message.signal, message.error);
        return;
    }
  }

  onAgentGone(vmName: string, reason: string): void {
    for (const session of [...this.sessions.values()]) {
      if (session.vmName === vmName) session.agentGone(reason);
    }
  }

  /** Ends every session (controller shutdown) and waits for the audit rows to be written. */
  async close(): Promise<void> {
    this.closing = true;
    this.unsubscribe();
    for (const session of [...this.sessions.values()]) {
      session.stop(
        "controller_stopped",
        "NBF_CONTROLLER_STOPPING",
        "the controller is shutting down; the terminal session ended",
        TerminalCloseCode.goingAway,
      );
    }
    await Promise.allSettled([...this.writes]);
  }

  /**
   * A revoked token's sessions end, their processes killed: a leaked admin token's shells must
   * not go on. (Signing out of the console only detaches its clients: the token is still good.)
   */
  private endWithItsToken(session: TerminalSession, principal: TokenRecord): void {
    const tracked = this.options.streams.track({ principal, session: null });
    this.trackedByToken.set(session.id, tracked);
    tracked.endWith(() =>
      session.stop(
        "revoked",
        "NBF_AUTH_INVALID",
        `token ${principal.name} that opened terminal session ${session.id} was revoked; the session ended`,
        TerminalCloseCode.ended,
      ),
    );
  }

  private onEnded(session: TerminalSession): void {
    this.trackedByToken.get(session.id)?.release();
    this.trackedByToken.delete(session.id);
    const endedAt = session.endedAtMs ?? Date.now();
    const reason: EndReason = session.endReason ?? "exited";
    const write = this.options.store.terminalSessions
      .finish(session.id, {
        closedAt: new Date(endedAt).toISOString(),
        durationMs: endedAt - session.openedAtMs,
        exitCode: session.exit?.exitCode ?? null,
        signal: session.exit?.signal ?? null,
        endReason: reason,
        bytesIn: session.bytesIn,
        bytesOut: session.bytesOut,
        attaches: session.attaches,
      })
      .catch((error: unknown) =>
        this.options.log.error({ err: error, session: session.id }, "writing the terminal audit row failed"),
      );
    this.writes.add(write);
    void write.finally(() => this.writes.delete(write));
    if (reason !== "open_failed") {
      const exit = session.exit
        ? session.exit.signal
          ? `, killed by ${session.exit.signal}`
          : `, exit code ${session.exit.exitCode}`
        : "";
      this.options.bus.emit({
        vmName: session.vmName,
        kind: "terminal.closed",
        level: reason === "agent_gone" ? "warn" : "info",
        message: `terminal session ${session.id} of token ${session.owner.name} ended (${reason.replace("_", " ")}${exit}) after ${Math.round((endedAt - session.openedAtMs) / 1000)} s`,
        data: {
          session: session.id,
          reason,
          durationMs: endedAt - session.openedAtMs,
          exitCode: session.exit?.exitCode ?? null,
          signal: session.exit?.signal ?? null,
          tokenId: session.owner.id,
        },
      });
    }
    if (session.endSeen || this.closing || reason === "open_failed") {
      this.sessions.delete(session.id);
      return;
    }
    // Nobody saw the end: keep it a little for a client that reattaches.
    const linger = setTimeout(
      () => {
        if (this.sessions.get(session.id) === session) this.sessions.delete(session.id);
      },
      Math.min(MAX_LINGER_MS, this.options.detachedTimeoutMs),
    );
    linger.unref();
  }
}

function auditRecord(session: TerminalSession): TerminalSessionView {
  return {
    id: session.id,
    vmName: session.vmName,
    tokenId: session.owner.id,
    tokenName: session.owner.name,
    kind: session.kind,
    command: session.command,
    tty: session.tty,
    openedAt: new Date(session.openedAtMs).toISOString(),
    closedAt: null,
    durationMs: null,
    exitCode: null,
    signal: null,
    endReason: null,
    bytesIn: 0,
    bytesOut: 0,
    attaches: 0,
  };
}
