/**
 * A TCP proxy in front of PostgreSQL that passes everything except notifications: the
 * server's NotificationResponse messages ('A') never reach the client. LISTEN succeeds and
 * nothing ever arrives, which is what a client sees behind a PgBouncer in transaction pooling
 * mode (its LISTEN ran on a server connection it no longer holds). Only for plain (non-TLS)
 * connections: the server → client direction is read as typed, length-prefixed messages.
 */
import { type AddressInfo, type Server, type Socket, connect, createServer } from "node:net";

export interface NotifyDroppingProxy {
  /** `databaseUrl` with its host and port replaced by the proxy's. */
  url: string;
  /** Notifications dropped so far. */
  dropped(): number;
  close(): Promise<void>;
}

const NOTIFICATION = 0x41; // 'A'

export async function startNotifyDroppingProxy(databaseUrl: string): Promise<NotifyDroppingProxy> {
  const target = new URL(databaseUrl);
  let dropped = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connect(Number(target.port || 5432), target.hostname);
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream);
    let pending: Buffer = Buffer.alloc(0);
    upstream.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let at = 0;
      while (pending.length - at >= 5) {
        const size = 1 + pending.readInt32BE(at + 1);
        if (pending.length - at < size) break;
        if (pending[at] === NOTIFICATION) dropped++;
        else client.write(pending.subarray(at, at + size));
        at += size;
      }
      pending = pending.subarray(at);
    });
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("close", end);
    upstream.on("close", end);
    client.on("error", end);
    upstream.on("error", end);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = new URL(databaseUrl);
  url.hostname = "127.0.0.1";
  url.port = String((server.address() as AddressInfo).port);
  return {
    url: url.toString(),
    dropped: () => dropped,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
