/**
 * A terminal client's input on its way to the agent, at the pace the agent and the process read.
 * Two things hold it back, and while either does, input waits here and the client's socket is
 * paused (its TCP window fills and the client feels the backpressure):
 * - the agent's one connection, which carries every terminal and log stream of its VM and is
 *   closed once too much waits for it (gateway/session.ts): above a high-water mark of its
 *   backlog input waits, below the low-water mark it flows again;
 * - the process itself: the agent says `pty.inputFlow` paused when the process has left too much
 *   of its input unread, and resumed once it read it (an agent would otherwise end the session).
 * What waits here is at most what the client sent before its socket was paused.
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
  /** The agent asked to hold this session's input (pty.inputFlow). */
  private agentPaused = false;

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
    this.hold(from);
  }

  /**
   * The agent's word on the process's reading: paused, input waits and `client` (if any) is no
   * longer read; resumed, what waited goes on and the client is read again.
   */
  agentFlow(paused: boolean, client: WebSocket | null): void {
    this.agentPaused = paused;
    if (paused) {
      if (client) this.hold(client);
    } else this.check();
  }

  /**
   * The session is over: held input is dropped, and the client is read again so that its answer
   * to the close comes through (a paused one is only destroyed after the close's grace).
   */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    this.held.length = 0;
    this.paused?.resume();
    this.paused = null;
    this.agentPaused = false;
  }

  private hold(from: WebSocket): void {
    if (this.paused !== from) {
      from.pause();
      this.paused = from;
    }
    this.timer ??= setInterval(() => this.check(), FLOW_CHECK_MS);
    this.timer.unref();
  }

  private pass(): void {
    while (this.held.length > 0 && !this.agentPaused && this.agentBacklog() <= HIGH_WATER)
      this.toAgent(this.held.shift()!);
  }

  private check(): void {
    if (this.agentPaused || this.agentBacklog() > LOW_WATER) return;
    this.pass();
    if (this.held.length > 0 || this.agentBacklog() > LOW_WATER) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.paused?.resume();
    this.paused = null;
  }
}
