/**
 * What drives an agent (the local control socket, the controller link) sees of it: its whole
 * state, a stream of events, and one entry point for commands. Commands from the CLI and from
 * the controller are the same protocol messages and take this one path.
 */
import type { AgentEvent, AgentState, CommandError, CommandMessage } from "@nbfleet/shared";

export type CommandOutcome = { ok: true; data?: unknown } | { ok: false; error: CommandError };

export interface AgentCore {
  state(): AgentState;
  /** Runs a command once; the same id again returns the first outcome (de-duplication). */
  execute(command: CommandMessage, progress: (message: string) => void): Promise<CommandOutcome>;
  /** Called on every state change and every event; returns an unsubscribe function. */
  subscribe(listener: { onState(state: AgentState): void; onEvent(event: AgentEvent): void }): () => void;
}
