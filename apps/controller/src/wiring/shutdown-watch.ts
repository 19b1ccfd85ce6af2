/**
 * What a shutdown is waiting for, said while it waits. Node's HTTP server closes only when every
 * socket has, upgraded ones included, and one that nobody closes holds the close with no
 * deadline (an agent in its handshake did: gateway/shutdown.test.ts). Every few seconds of such
 * a wait, a warning counts the open connections and names their peers, so the next case is
 * named in the log instead of found by timing each step of the close.
 */
import type { Socket } from "node:net";
import type { FastifyInstance } from "fastify";

export const SHUTDOWN_REPORT_EVERY_MS = 3000;
const PEERS_NAMED = 10;

export function watchShutdown(app: FastifyInstance, everyMs = SHUTDOWN_REPORT_EVERY_MS): void {
  const open = new Set<Socket>();
  app.server.on("connection", (socket: Socket) => {
    open.add(socket);
    socket.once("close", () => open.delete(socket));
  });
  let timer: NodeJS.Timeout | undefined;
  app.addHook("preClose", (done) => {
    const started = Date.now();
    timer = setInterval(() => {
      if (open.size === 0) return;
      const peers = [...open].slice(0, PEERS_NAMED).map((s) => `${s.remoteAddress}:${s.remotePort}`);
      app.log.warn(
        { waitingSec: Math.round((Date.now() - started) / 1000), openConnections: open.size, peers },
        `shutdown waiting for ${open.size} open connection(s): ${peers.join(", ")}`,
      );
    }, everyMs);
    timer.unref();
    done();
  });
  // Runs once the HTTP server has closed (Fastify closes it before the other onClose hooks).
  app.addHook("onClose", async () => clearInterval(timer));
}
