/**
 * A TCP load balancer for tests: one loopback port in front of several backends (controller
 * replicas). Each new connection goes to the backend with the fewest open connections, in turn
 * among equals (HAProxy's `leastconn`): long-lived agent links spread evenly even when short
 * requests (an artifact download) come between them. A backend whose connect fails is skipped
 * and the next one tried, as a production balancer with health checks would.
 * Bytes are piped untouched (HTTP, WebSocket upgrades, TLS alike); when either side closes, the
 * other is closed too, so an agent whose replica died sees its link drop and dials again.
 */
import net from "node:net";

export interface Backend {
  host: string;
  port: number;
}

export interface TcpBalancer {
  /** `http://127.0.0.1:<port>`: the URL to give as NBFLEET_PUBLIC_URL. */
  readonly url: string;
  readonly port: number;
  /** Connections handed to each backend so far, keyed `host:port`. */
  readonly accepted: Map<string, number>;
  /** Connections open to each backend now, keyed `host:port`. */
  readonly active: Map<string, number>;
  /** Replaces the backend list (e.g. a restarted replica on a new port; none: every connection refused). */
  setBackends(backends: Backend[]): void;
  /** Drops every connection open now, both sides, without a close handshake (a network failure). */
  dropConnections(): void;
  close(): Promise<void>;
}

const CONNECT_TIMEOUT_MS = 2000;

export async function startTcpBalancer(backends: Backend[], port = 0): Promise<TcpBalancer> {
  let list = [...backends];
  let next = 0;
  const accepted = new Map<string, number>();
  const active = new Map<string, number>();
  const keyOf = (backend: Backend) => `${backend.host}:${backend.port}`;
  const open = new Set<net.Socket>();

  const connectTo = (backend: Backend): Promise<net.Socket> =>
    new Promise((resolve, reject) => {
      const socket = net.connect({ host: backend.host, port: backend.port });
      socket.setTimeout(CONNECT_TIMEOUT_MS, () => socket.destroy(new Error("connect timed out")));
      socket.once("connect", () => {
        socket.setTimeout(0);
        resolve(socket);
      });
      socket.once("error", reject);
    });

  /** The least busy backend that accepts a connection (in turn among equals). */
  const pick = async (): Promise<{ socket: net.Socket; backend: Backend } | null> => {
    const start = next++;
    const order = list
      .map((backend, i) => ({ backend, turn: (i - (start % list.length) + list.length) % list.length }))
      .sort(
        (a, b) =>
          (active.get(keyOf(a.backend)) ?? 0) - (active.get(keyOf(b.backend)) ?? 0) || a.turn - b.turn,
      )
      .map((entry) => entry.backend);
    for (const backend of order) {
      try {
        return { socket: await connectTo(backend), backend };
      } catch {
        // down: the next one
      }
    }
    return null;
  };

  const server = net.createServer((client) => {
    open.add(client);
    client.pause();
    client.on("error", () => {});
    client.once("close", () => open.delete(client));
    void pick().then((picked) => {
      if (!picked || client.destroyed) {
        picked?.socket.destroy();
        client.destroy();
        return;
      }
      const { socket: upstream, backend } = picked;
      const key = keyOf(backend);
      accepted.set(key, (accepted.get(key) ?? 0) + 1);
      active.set(key, (active.get(key) ?? 0) + 1);
      open.add(upstream);
      upstream.on("error", () => {});
      upstream.once("close", () => {
        active.set(key, (active.get(key) ?? 1) - 1);
        open.delete(upstream);
        client.destroy();
      });
      client.once("close", () => upstream.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
      client.resume();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const bound = (server.address() as net.AddressInfo).port;
  const dropConnections = () => {
    for (const socket of open) socket.destroy();
  };
  return {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    accepted,
    active,
    setBackends(backends) {
      list = [...backends];
    },
    dropConnections,
    close: () =>
      new Promise<void>((resolve) => {
        dropConnections();
        server.close(() => resolve());
      }),
  };
}
