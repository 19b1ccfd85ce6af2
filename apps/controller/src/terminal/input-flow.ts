/**
 * A terminal client's input on its way to the agent, at the pace the agent reads. The agent's
 * one connection carries every terminal and log stream of its VM, and is closed once too much
 * waits for it (gateway/session.ts): so above a high-water mark of that connection's backlog
 * input waits here and the client's socket is paused (its TCP window fills and the client feels
 * the backpressure); below the low-water mark it flows again. What waits here is at most one
 * client frame.
 */
import type WebSocket from "ws";

export type InputMessage = Record<string, unknown> & { type: string };

const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
const FLOW_CHECK_MS = 20;

export class InputFlow {
  private readonly held: InputMessage[] = [];
  private paused: WebSocket | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly toAgent: (message: InputMessage) => boolean,
    /** Bytes not yet written to the agent's connection. */
    private readonly agentBacklog: () => number,
  ) {}

  /** Sends the messages in order, holding what the agent cannot take yet and pausing `from`. */
  send(from: WebSocket, messages: InputMessage[]): void {
    this.held.push(...messages);
    this.pass();
    if (this.held.length === 0 && this.agentBacklog() <= HIGH_WATER) return;
    if (this.paused !== from) {
      from.pause();
      this.paused = from;
    }
    this.timer ??= setInterval(() => this.check(), FLOW_CHECK_MS);
    this.timer.unref();
  }

  /** The session is over: held input is dropped, the client socket is left to its close. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.held.length = 0;
    this.paused = null;
  }

  private pass(): void {
    while (this.held.length > 0 && this.agentBacklog() <= HIGH_WATER) this.toAgent(this.held.shift()!);
  }

  private check(): void {
    if (this.agentBacklog() > LOW_WATER) return;
    this.pass();
    if (this.held.length > 0 || this.agentBacklog() > LOW_WATER) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.paused?.resume();
    this.paused = null;
  }
}
