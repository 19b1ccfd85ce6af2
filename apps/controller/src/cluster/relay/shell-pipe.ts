/**
 * One relayed terminal: frames go both ways unchanged, and each side's close (code and reason)
 * becomes the other's. A side that stops reading stops the other from being read: above the
 * high-water mark of unsent bytes the source socket is paused, so its TCP window fills and the
 * owning replica's session sees the backpressure it already handles (it asks the agent to stop
 * reading the process). No buffer here grows beyond the mark plus one frame.
 */
import { TerminalCloseCode } from "@nbfleet/shared";
import WebSocket from "ws";
import { closeWithin } from "../../gateway/socket-close.js";

const HIGH_WATER = 1024 * 1024;
const LOW_WATER = 256 * 1024;
const FLOW_CHECK_MS = 20;

/**
 * Starts piping; returns a function that ends the pipe as this replica shuts down. `done` runs
 * once the client's socket is closed (until then its unsent bytes are this replica's to hold).
 */
export function pipeShell(client: WebSocket, upstream: WebSocket, done: () => void): () => void {
  let finished = false;
  const timers = new Set<NodeJS.Timeout>();
  const finish = () => {
    if (finished) return;
    finished = true;
    for (const timer of timers) clearInterval(timer);
    done();
  };

  const forward = (from: WebSocket, to: WebSocket) => {
    let paused = false;
    from.on("message", (data, isBinary) => {
      if (to.readyState !== WebSocket.OPEN) return;
      to.send(data as Buffer, { binary: isBinary });
      if (paused || to.bufferedAmount <= HIGH_WATER) return;
      paused = true;
      from.pause();
      const timer = setInterval(() => {
        if (to.readyState === WebSocket.OPEN && to.bufferedAmount > LOW_WATER) return;
        clearInterval(timer);
        timers.delete(timer);
        paused = false;
        from.resume();
      }, FLOW_CHECK_MS);
      timer.unref();
      timers.add(timer);
    });
  };
  forward(upstream, client);
  forward(client, upstream);

  upstream.on("close", (code, reason) => {
    // 1006: the owning replica went away without a close frame, and its agent link with it.
    if (code === 1006) {
      sendIfOpen(
        client,
        JSON.stringify({
          type: "error",
          code: "NBF_AGENT_NOT_CONNECTED",
          message: "the replica holding the agent's connection went away; the terminal session ended with it",
        }),
      );
      closeWithin(client, TerminalCloseCode.agentGone, "agent_gone");
    } else closeWithin(client, sendable(code), reason.toString());
  });
  // The client going away only detaches it on the owner; the session lives on for a reattach.
  client.on("close", (code, reason) => {
    finish();
    closeWithin(upstream, sendable(code), reason.toString());
  });
  upstream.on("error", () => upstream.terminate());
  client.on("error", () => client.terminate());
  upstream.resume();

  return () => {
    closeWithin(client, TerminalCloseCode.goingAway, "controller shutting down");
    closeWithin(upstream, 1000, "relaying replica shutting down");
    finish();
  };
}

/** Codes a close frame may carry (1005 and 1006 only describe a close without one). */
function sendable(code: number): number {
  return code === 1000 || code === 1001 || (code >= 3000 && code <= 4999) ? code : 1000;
}

function sendIfOpen(ws: WebSocket, data: string): void {
  if (ws.readyState === WebSocket.OPEN) ws.send(data);
}
