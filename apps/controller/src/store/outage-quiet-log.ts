/**
 * The services' logger while PostgreSQL may be away: a warning or error whose `err` is a
 * connection error (NBF_DATABASE_UNAVAILABLE, a refused or cut connection) goes to debug, since
 * the database monitor already logs the outage once when it starts and once when it ends.
 * Without this every sweep, heartbeat and poll would log the same outage several times a
 * second. Every other line passes through unchanged.
 */
import type { FastifyBaseLogger } from "fastify";
import { isConnectionError } from "./postgres-errors.js";

const QUIETED = new Set<PropertyKey>(["warn", "error"]);

export function outageQuietLog(log: FastifyBaseLogger): FastifyBaseLogger {
  return new Proxy(log, {
    get(target, property) {
      if (property === "child") {
        return (...args: Parameters<FastifyBaseLogger["child"]>) => outageQuietLog(target.child(...args));
      }
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      if (!QUIETED.has(property)) return value.bind(target);
      return (first: unknown, ...rest: unknown[]) => {
        const error = (first as { err?: unknown } | null)?.err ?? first;
        const method = isConnectionError(error) ? target.debug : value;
        return (method as (...a: unknown[]) => void).call(target, first, ...rest);
      };
    },
  });
}
