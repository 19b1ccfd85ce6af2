/**
 * What each frame from the controller sets off: a welcome goes to the handshake, a command is
 * acknowledged at once and run by the core (progress and its one result go out as reports), a
 * stream message goes to the streams, a command the agent cannot run gets a failed result, and
 * another protocol major version ends the connection.
 */
import {
  CloseCode,
  type CommandMessage,
  type ControllerStreamMessage,
  FEATURE_PTY_INPUT_FLOW,
  PROTOCOL_VERSION,
  type WelcomeMessage,
} from "@nbfleet/shared";
import type { AgentCore, CommandOutcome } from "../core.js";
import { versionVerdict } from "./close-reason.js";
import type { Connection } from "./connection.js";
import type { LinkLog } from "./log.js";
import { type ControllerFrame, sendFrame } from "./messages.js";
import type { Reporter } from "./report.js";
import type { LinkStreams } from "./streams.js";

export interface DispatchTargets {
  core: AgentCore;
  reporter: Reporter;
  streams: LinkStreams | undefined;
  log: LinkLog;
  welcome(connection: Connection, welcome: WelcomeMessage): Promise<void>;
}

export async function dispatch(
  connection: Connection,
  frame: ControllerFrame,
  to: DispatchTargets,
): Promise<void> {
  switch (frame.kind) {
    case "welcome":
      return to.welcome(connection, frame.message);
    case "command":
      return runCommand(connection, frame.message, to);
    case "stream":
      return serveStream(connection, frame.message, to.streams);
    case "unrunnable":
      sendFrame(connection.ws, { type: "ack", commandId: frame.commandId });
      to.log.warn(`refused command ${frame.commandId}: ${frame.problem}`);
      to.reporter.result({
        commandId: frame.commandId,
        ok: false,
        error: { code: frame.code, message: frame.problem },
      });
      return;
    case "version":
      connection.verdict = versionVerdict(frame.version);
      connection.ws.close(CloseCode.protocolVersion, `agent speaks ${PROTOCOL_VERSION}`);
      return;
    case "invalid":
      to.log.warn(`ignored a message from the controller: ${frame.problem}`);
      return;
  }
}

/** Acknowledges at once; the result goes out when the core is done, on whatever connection is then up. */
function runCommand(connection: Connection, command: CommandMessage, to: DispatchTargets): void {
  sendFrame(connection.ws, { type: "ack", commandId: command.id });
  void to.core
    .execute(command, (message) => to.reporter.progress(command.id, message))
    .catch(
      (error): CommandOutcome => ({
        ok: false,
        error: { code: "NBF_INTERNAL", message: error instanceof Error ? error.message : String(error) },
      }),
    )
    .then((outcome) => to.reporter.result({ commandId: command.id, ...outcome }));
}

/** Streams belong to the connection that opened them; without streams every open is refused. */
function serveStream(
  connection: Connection,
  message: ControllerStreamMessage,
  streams: LinkStreams | undefined,
): void {
  if (!connection.welcomed) return;
  const { ws } = connection;
  const out = {
    send: (body: Record<string, unknown>) => sendFrame(ws, body),
    backlog: () => ws.bufferedAmount,
    inputFlow: connection.controllerFeatures.includes(FEATURE_PTY_INPUT_FLOW),
  };
  if (streams) {
    streams.handle(message, out);
    return;
  }
  const error = {
    code: "NBF_COMMAND_UNKNOWN",
    message: "this agent serves no terminal sessions or log streams",
  };
  if (message.type === "pty.open") {
    out.send({ type: "pty.exit", session: message.session, exitCode: null, signal: null, error });
  } else if (message.type === "logs.open") {
    out.send({ type: "logs.end", stream: message.stream, error });
  }
}
