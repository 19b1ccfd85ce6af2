/**
 * One WebSocket's life, from dial to close: it listens, hands each frame on in arrival order
 * (one at a time), drops the connection when the controller has gone silent for 3 ping
 * intervals, and closes it when the agent stops. What the frames mean is dispatch's; what the
 * end means is the link's.
 */
import WebSocket from "ws";
import type { CloseVerdict } from "./close-reason.js";
import { silenceVerdict } from "./close-reason.js";
import type { LinkLog } from "./log.js";
import { type ControllerFrame, parseControllerFrame } from "./messages.js";
import { type UpgradeRefusal, readRefusal } from "./refusal.js";
import type { Secret } from "./secret.js";

export interface Connection {
  ws: WebSocket;
  secret: Secret;
  lastHeardAt: number;
  welcomed: boolean;
  welcomedAt: number | null;
  /** What the controller's welcome said it takes beyond the basics (FEATURE_*). */
  controllerFeatures: readonly string[];
  /** The first socket error. */
  error: Error | null;
  /** Set when the link itself decided why this connection ends. */
  verdict: CloseVerdict | null;
  /** Set when the controller answered the upgrade with an HTTP error instead of a WebSocket. */
  refusal: UpgradeRefusal | null;
}

/** What the link does at each turn of a connection's life. */
export interface ConnectionRoutines<Ended> {
  opened(): void;
  frame(frame: ControllerFrame): Promise<void>;
  closed(code: number, reason: string): Ended;
}

export interface ConnectionWatch {
  signal: AbortSignal;
  pingIntervalMs: number;
  log: LinkLog;
}

/** Time the controller gets to answer a close, and to explain a refused upgrade. */
const CLOSE_GRACE_MS = 2000;

export function newConnection(ws: WebSocket, secret: Secret): Connection {
  return {
    ws,
    secret,
    lastHeardAt: Date.now(),
    welcomed: false,
    welcomedAt: null,
    controllerFeatures: [],
    error: null,
    verdict: null,
    refusal: null,
  };
}

/** Resolves with what `routines.closed` makes of the close, once the socket is closed. */
export function runConnection<Ended>(
  connection: Connection,
  routines: ConnectionRoutines<Ended>,
  watch: ConnectionWatch,
): Promise<Ended> {
  const { ws } = connection;
  return new Promise<Ended>((resolve) => {
    let chain: Promise<void> = Promise.resolve();
    const heard = () => {
      connection.lastHeardAt = Date.now();
    };
    const watchdog = watchSilence(connection, watch.pingIntervalMs);
    const onAbort = () => closeForShutdown(ws);
    watch.signal.addEventListener("abort", onAbort, { once: true });

    ws.on("open", () => {
      heard();
      routines.opened();
    });
    // The controller refuses an unknown secret before the upgrade: read why, then end the attempt.
    ws.on("unexpected-response", (_request, response) => {
      void readRefusal(response, CLOSE_GRACE_MS).then((refusal) => {
        connection.refusal = refusal;
        ws.terminate();
      });
    });
    ws.on("ping", heard);
    ws.on("pong", heard);
    ws.on("message", (data, isBinary) => {
      heard();
      const frame = parseControllerFrame(data as Buffer, isBinary);
      chain = chain
        .then(() => routines.frame(frame))
        .catch((error) => watch.log.error(`handling a controller message failed: ${String(error)}`));
    });
    ws.on("error", (error) => {
      connection.error ??= error;
    });
    ws.on("close", (code, reason) => {
      clearInterval(watchdog);
      watch.signal.removeEventListener("abort", onAbort);
      resolve(routines.closed(code, reason.toString()));
    });
  });
}

function watchSilence(connection: Connection, pingIntervalMs: number): NodeJS.Timeout {
  const deadAfterMs = 3 * pingIntervalMs;
  return setInterval(
    () => {
      const silentMs = Date.now() - connection.lastHeardAt;
      if (silentMs <= deadAfterMs) return;
      connection.verdict = silenceVerdict(silentMs, pingIntervalMs);
      connection.ws.terminate();
    },
    Math.max(10, Math.min(1000, Math.floor(deadAfterMs / 4))),
  );
}

function closeForShutdown(ws: WebSocket): void {
  if (ws.readyState === WebSocket.CONNECTING) {
    ws.terminate();
    return;
  }
  ws.close(1000, "agent shutting down");
  setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
}
