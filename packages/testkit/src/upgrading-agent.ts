/**
 * A fake agent for agent.upgrade tests on the controller side: the real protocol over a real
 * WebSocket (hello with its version and the `agent.upgrade` capability, welcome, acks, results,
 * events), and on `agent.upgrade` what a guest would do, chosen per agent:
 *   - `upgrade`: answers ok {from, to}, drops the connection (the agent exits), and after
 *     `restartMs` comes back reporting the new version, the notebook untouched (same pid);
 *   - `rollback`: the same, but comes back on the old version and sends the
 *     `agent.upgrade.rolled_back` event its launcher would have it send;
 *   - `vanish`: answers ok, drops the connection and never comes back;
 *   - `refuse`: answers NBF_ARTIFACT_REFUSED (a bad signature) and stays;
 *   - `sicken`: comes back on the new version healthy, then reports unhealthy after `sickenMs`.
 * Like the real agent it de-duplicates command ids, answers a repeated upgrade to the version it
 * runs with `alreadyCurrent`, and reconnects (to `url`, which a test may change) until closed.
 */
import {
  AGENT_CONNECT_PATH,
  type AgentState,
  CAPABILITY_AGENT_UPGRADE,
  type CommandMessage,
  type ControllerMessage,
  PROTOCOL_VERSION,
} from "@nbfleet/shared";
import WebSocket from "ws";
import { simState } from "./sim-agent.js";

export type UpgradeBehaviour = "upgrade" | "rollback" | "vanish" | "refuse" | "sicken";

export interface UpgradingAgentOptions {
  url: string;
  /** The VM's agent credential (`nbfa_…`). */
  credential: string;
  hostname: string;
  version: string;
  behaviour?: UpgradeBehaviour;
  /** How long the "restart" takes before the agent dials again (default 100 ms). */
  restartMs?: number;
  sickenMs?: number;
  /** Reported capabilities (default: notebook, password, certificate, agent.upgrade). */
  capabilities?: string[];
}

let counter = 0;

export class UpgradingAgent {
  url: string;
  version: string;
  behaviour: UpgradeBehaviour;
  /** The agent.upgrade commands that made this agent switch (a repeated id is not here twice). */
  readonly upgrades: Array<{ at: number; commandId: string; from: string; to: string }> = [];
  /** Every command received, repeats included. */
  readonly received: CommandMessage[] = [];
  /** Connections welcomed so far. */
  welcomes = 0;
  private ws: WebSocket | null = null;
  private closed = false;
  private healthy = true;
  private readonly pid = 4000 + ++counter;
  private readonly startedAt = new Date().toISOString();
  private readonly outcomes = new Map<string, { ok: boolean; data?: unknown; error?: unknown }>();
  private welcomed: (() => void) | null = null;

  constructor(readonly options: UpgradingAgentOptions) {
    this.url = options.url;
    this.version = options.version;
    this.behaviour = options.behaviour ?? "upgrade";
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN && this.welcomed === null;
  }

  /** Connects and resolves at the welcome. */
  connect(): Promise<void> {
    this.closed = false;
    return new Promise((resolve, reject) => {
      this.welcomed = resolve;
      const ws = new WebSocket(this.url.replace(/^http/, "ws") + AGENT_CONNECT_PATH, {
        headers: { authorization: `Bearer ${this.options.credential}` },
        perMessageDeflate: false,
      });
      this.ws = ws;
      ws.on("open", () =>
        this.send({
          type: "hello",
          agent: { version: this.version, hostname: this.options.hostname, os: "linux", arch: "x64" },
          capabilities: this.options.capabilities ?? [
            "notebook",
            "password",
            "certificate",
            CAPABILITY_AGENT_UPGRADE,
          ],
          state: this.state(),
        }),
      );
      ws.on("message", (data) => this.onMessage(JSON.parse(String(data)) as ControllerMessage));
      ws.on("error", () => {});
      ws.on("close", () => {
        if (this.ws !== ws) return;
        this.ws = null;
        if (this.welcomed) {
          this.welcomed = null;
          reject(new Error(`${this.options.hostname}: closed before the welcome`));
        }
        if (!this.closed) this.redial(200);
      });
    });
  }

  close(): void {
    this.closed = true;
    this.ws?.close();
  }

  private state(): AgentState {
    return simState({
      state: this.healthy ? "running" : "failed",
      pid: this.healthy ? this.pid : null,
      port: 9999,
      restarts: 0,
      startedAt: this.startedAt,
    });
  }

  private send(body: Record<string, unknown>): void {
    if (this.ws?.readyState !== WebSocket.OPEN) return;
    this.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, id: `u${++counter}`, ...body }));
  }

  private onMessage(message: ControllerMessage): void {
    if (message.type === "welcome") {
      this.welcomes++;
      const welcomed = this.welcomed;
      this.welcomed = null;
      welcomed?.();
      return;
    }
    if (message.type !== "command") return;
    this.received.push(message);
    this.send({ type: "ack", commandId: message.id });
    const known = this.outcomes.get(message.id);
    if (known) {
      this.send({ type: "result", commandId: message.id, ...known });
      return;
    }
    if (message.name !== "agent.upgrade") {
      this.answer(message.id, { ok: true, data: {} });
      return;
    }
    const { version } = message.params;
    if (version === this.version) {
      this.answer(message.id, { ok: true, data: { version, alreadyCurrent: true } });
      return;
    }
    if (this.behaviour === "refuse") {
      this.answer(message.id, {
        ok: false,
        error: { code: "NBF_ARTIFACT_REFUSED", message: `the signature of ${version} does not verify` },
      });
      return;
    }
    const from = this.version;
    this.upgrades.push({ at: Date.now(), commandId: message.id, from, to: version });
    this.answer(message.id, { ok: true, data: { from, to: version } });
    this.restart(from, version);
  }

  private answer(commandId: string, outcome: { ok: boolean; data?: unknown; error?: unknown }): void {
    this.outcomes.set(commandId, outcome);
    this.send({ type: "result", commandId, ...outcome });
  }

  /** The agent process exits after its answer; its launcher starts the new (or old) one. */
  private restart(from: string, to: string): void {
    const ws = this.ws;
    this.ws = null;
    // The answer leaves before the socket closes, as the real agent's does before it exits.
    ws?.close(1001, "agent restarting for an upgrade");
    if (this.behaviour === "vanish") {
      this.closed = true;
      return;
    }
    // A new process does not remember the old one's commands.
    this.outcomes.clear();
    if (this.behaviour !== "rollback") this.version = to;
    setTimeout(() => {
      if (this.closed) return;
      this.connect()
        .then(() => {
          if (this.behaviour === "rollback")
            this.send({
              type: "event",
              event: {
                kind: "agent.upgrade.rolled_back",
                level: "error",
                message: `agent ${to} did not come up (exited 3 times); rolled back to ${from}`,
                data: { from, to, reason: "exited 3 times" },
                at: new Date().toISOString(),
              },
            });
          if (this.behaviour === "sicken")
            setTimeout(() => {
              this.healthy = false;
              this.send({ type: "state", state: this.state() });
            }, this.options.sickenMs ?? 300).unref();
        })
        .catch(() => this.redial(200));
    }, this.options.restartMs ?? 100).unref();
  }

  private redial(afterMs: number): void {
    setTimeout(() => {
      if (this.closed || this.ws) return;
      this.connect().catch(() => {});
    }, afterMs).unref();
  }
}
