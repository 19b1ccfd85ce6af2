/**
 * An AgentCore for link tests: a plausible whole state that a test changes at will, events it
 * raises, and commands that run through a handler the test chooses. Executions are counted,
 * and a command id seen again returns the first outcome without running again, like the
 * real core.
 */

import type { AgentCore, CommandOutcome } from "@nbfleet/agent";
import {
  type AgentEvent,
  type AgentState,
  type CommandMessage,
  type HealthCheck,
  type NotebookState,
  foldHealth,
} from "@nbfleet/shared";

type Listener = Parameters<AgentCore["subscribe"]>[0];
export type CommandHandler = (
  command: CommandMessage,
  progress: (message: string) => void,
) => Promise<CommandOutcome>;

export function fakeState(
  input: { state?: NotebookState; pid?: number | null; restarts?: number } = {},
): AgentState {
  const now = new Date();
  const state = input.state ?? "running";
  const checks: HealthCheck[] = [
    {
      name: "process",
      status: state === "running" ? "pass" : "fail",
      message: state,
      checkedAt: now.toISOString(),
    },
  ];
  return {
    notebook: {
      state,
      pid: input.pid === undefined ? 4242 : input.pid,
      port: 9999,
      url: "https://localhost:9999/",
      restarts: input.restarts ?? 0,
      startedAt: state === "running" ? now.toISOString() : null,
      generation: "notebook6",
      version: "6.4.12",
      certificate: null,
      lastError: null,
    },
    health: foldHealth(checks, state, now),
  };
}

export class FakeCore implements AgentCore {
  current: AgentState = fakeState();
  /** Every command that actually ran (a repeated id does not run again). */
  readonly executed: CommandMessage[] = [];
  handler: CommandHandler = async (command) => ({ ok: true, data: { ran: command.name } });
  private readonly listeners = new Set<Listener>();
  private readonly outcomes = new Map<string, Promise<CommandOutcome>>();

  state(): AgentState {
    return this.current;
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  execute(command: CommandMessage, progress: (message: string) => void): Promise<CommandOutcome> {
    const known = this.outcomes.get(command.id);
    if (known) return known;
    this.executed.push(command);
    const outcome = this.handler(command, progress);
    this.outcomes.set(command.id, outcome);
    return outcome;
  }

  setState(state: AgentState): void {
    this.current = state;
    for (const listener of this.listeners) listener.onState(state);
  }

  raise(event: Partial<AgentEvent> & { kind: string }): AgentEvent {
    const full: AgentEvent = { at: new Date().toISOString(), level: "info", message: event.kind, ...event };
    for (const listener of this.listeners) listener.onEvent(full);
    return full;
  }
}
