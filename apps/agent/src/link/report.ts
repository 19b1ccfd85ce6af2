/**
 * What the agent tells the controller without being asked: its state (on change, at most every
 * stateCoalesceMs, and the whole of it at the controller's report interval), its events, and
 * the results of commands. Only a welcomed connection carries them; events and results from
 * while there is none are kept (bounded, the oldest dropped) and sent after the next welcome.
 */
import type { AgentEvent, CommandError } from "@nbfleet/shared";
import type WebSocket from "ws";
import type { AgentCore } from "../core.js";
import type { LinkLog } from "./log.js";
import { sendFrame } from "./messages.js";
import type { LinkTiming } from "./options.js";

export type CommandResult = { commandId: string; ok: boolean; data?: unknown; error?: CommandError };

type ReportTiming = Pick<LinkTiming, "stateCoalesceMs" | "maxBufferedEvents" | "maxUndeliveredResults">;

export class Reporter {
  /** The welcomed connection, while there is one. */
  private current: WebSocket | null = null;
  private reportTimer: NodeJS.Timeout | undefined;
  private stateDirty = false;
  private lastStateAt = 0;
  private stateTimer: NodeJS.Timeout | undefined;
  private readonly bufferedEvents: AgentEvent[] = [];
  private droppedEvents = 0;
  private readonly undelivered = new Map<string, CommandResult>();

  constructor(
    private readonly core: AgentCore,
    private readonly timing: ReportTiming,
    private readonly log: LinkLog,
  ) {}

  /** Follows the core's state and events; returns the unsubscribe function. */
  follow(): () => void {
    return this.core.subscribe({
      onState: () => this.stateChanged(),
      onEvent: (event) => this.event(event),
    });
  }

  /** The hello just carried the whole state. */
  stateSentInHello(): void {
    this.stateDirty = false;
  }

  /** The controller welcomed the connection on `ws`: from now on reports go there. */
  attach(ws: WebSocket): void {
    this.current = ws;
  }

  /** Sends what was kept, then the state as it changes and every `reportIntervalSec`. */
  resume(reportIntervalSec: number): void {
    this.flushKept();
    this.lastStateAt = Date.now();
    if (this.stateDirty) this.scheduleState();
    this.reportTimer = setInterval(() => this.sendState(), reportIntervalSec * 1000);
    this.reportTimer.unref();
  }

  /** The connection on `ws` closed: reports wait for the next welcome. */
  detach(ws: WebSocket): void {
    if (this.current !== ws) return;
    this.current = null;
    clearInterval(this.reportTimer);
    this.reportTimer = undefined;
    clearTimeout(this.stateTimer);
    this.stateTimer = undefined;
  }

  /** The link stopped. */
  stop(): void {
    clearTimeout(this.stateTimer);
    this.stateTimer = undefined;
  }

  progress(commandId: string, message: string): void {
    this.send({ type: "progress", commandId, message: clip(message, 4096) });
  }

  result(result: CommandResult): void {
    if (this.send({ type: "result", ...result })) return;
    this.undelivered.delete(result.commandId);
    this.undelivered.set(result.commandId, result);
    if (this.undelivered.size > this.timing.maxUndeliveredResults) {
      this.undelivered.delete(this.undelivered.keys().next().value!);
    }
  }

  private stateChanged(): void {
    this.stateDirty = true;
    this.scheduleState();
  }

  private scheduleState(): void {
    if (!this.current || this.stateTimer) return;
    const wait = Math.max(0, this.lastStateAt + this.timing.stateCoalesceMs - Date.now());
    this.stateTimer = setTimeout(() => {
      this.stateTimer = undefined;
      if (this.stateDirty) this.sendState();
    }, wait);
    this.stateTimer.unref();
  }

  private sendState(): void {
    if (!this.current) return;
    this.stateDirty = false;
    this.lastStateAt = Date.now();
    this.send({ type: "state", state: this.core.state() });
  }

  private event(event: AgentEvent): void {
    const safe: AgentEvent = { ...event, kind: clip(event.kind, 64), message: clip(event.message, 8192) };
    if (this.current && this.send({ type: "event", event: safe })) return;
    this.bufferedEvents.push(safe);
    if (this.bufferedEvents.length > this.timing.maxBufferedEvents) {
      this.bufferedEvents.shift();
      this.droppedEvents++;
    }
  }

  private flushKept(): void {
    if (this.droppedEvents > 0) {
      const message = `${this.droppedEvents} events were dropped while the controller was unreachable`;
      this.log.warn(message);
      this.send({
        type: "event",
        event: { at: new Date().toISOString(), level: "warn", kind: "link.events_dropped", message },
      });
      this.droppedEvents = 0;
    }
    for (const event of this.bufferedEvents.splice(0)) this.send({ type: "event", event });
    const results = [...this.undelivered.values()];
    this.undelivered.clear();
    for (const result of results) this.result(result);
  }

  /** Sends on the welcomed connection; false when there is none. */
  private send(body: Record<string, unknown>): boolean {
    return this.current ? sendFrame(this.current, body) : false;
  }
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
