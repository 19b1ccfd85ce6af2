/**
 * What the link hands stream messages (terminals, log follows) to. Streams belong to the
 * connection that opened them: `out` writes on that connection only, and when it closes
 * `disconnected()` ends every stream (the controller forgets them at the same moment).
 */
import type { ControllerStreamMessage } from "@nbfleet/shared";

export interface StreamOut {
  /** Sends one message (the link adds `v` and `id`); false once the connection is gone. */
  send(body: Record<string, unknown>): boolean;
  /** Bytes written to the connection but not yet sent (for flow control). */
  backlog(): number;
  /** The controller takes `pty.inputFlow` (its welcome named FEATURE_PTY_INPUT_FLOW). */
  readonly inputFlow?: boolean;
}

export interface LinkStreams {
  /** Added to the hello's capabilities. */
  readonly capabilities: readonly string[];
  handle(message: ControllerStreamMessage, out: StreamOut): void;
  disconnected(): void;
}
