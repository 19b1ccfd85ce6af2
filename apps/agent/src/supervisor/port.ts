/**
 * The notebook must get exactly its port (port_retries=0): before a start we check the port is
 * free and, when it is not, say which process holds it.
 */
import { readFile, readdir, readlink } from "node:fs/promises";
import net from "node:net";
import { AgentError } from "../errors.js";
import { commandLine } from "./proc.js";

export async function assertPortFree(ip: string, port: number): Promise<void> {
  const free = await canListen(ip, port);
  if (free) return;
  const holder = await findListener(port);
  const who = holder ? ` by pid ${holder.pid} (${holder.command ?? "unknown command"})` : "";
  throw new AgentError(
    "NBF_PORT_IN_USE",
    `port ${port} on ${ip} is already in use${who}; free it or choose another --port (the notebook never drifts to another port)`,
    { ip, port, holderPid: holder?.pid ?? null },
  );
}

/** True when nothing holds the port: a listener on it could be opened (and was closed again). */
export function canListen(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE" || error.code === "EACCES") resolve(false);
      else reject(error);
    });
    server.listen({ host: ip, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/** Finds the process listening on a TCP port through /proc/net/tcp{,6} and the fd tables. */
export async function findListener(port: number): Promise<{ pid: number; command: string | null } | null> {
  const inodes = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await readFile(table, "utf8").catch(() => "");
    for (const line of text.split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      const local = cols[1];
      if (!local || cols[3] !== "0A") continue;
      if (Number.parseInt(local.split(":")[1] ?? "", 16) === port && cols[9]) inodes.add(cols[9]);
    }
  }
  if (inodes.size === 0) return null;
  for (const entry of await readdir("/proc").catch(() => [])) {
    if (!/^\d+$/.test(entry)) continue;
    const fds = await readdir(`/proc/${entry}/fd`).catch(() => []);
    for (const fd of fds) {
      const target = await readlink(`/proc/${entry}/fd/${fd}`).catch(() => "");
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode && inodes.has(inode))
        return { pid: Number(entry), command: await commandLine(Number(entry)) };
    }
  }
  return null;
}
