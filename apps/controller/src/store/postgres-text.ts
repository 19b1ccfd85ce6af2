/**
 * PostgreSQL text cannot hold U+0000 (SQLite's can): one such character in a parameter fails
 * the whole statement, and so a write-behind batch of the whole fleet's rows, retried for ever,
 * for one agent's event message or error text. Every string a statement binds has it replaced
 * by U+FFFD, as an undecodable character would be. (JSON columns escape it already.)
 */
import type { PostgresPool, PostgresPoolClient } from "kysely";

export function nulFreePool(pool: PostgresPool): PostgresPool {
  return {
    async connect(): Promise<PostgresPoolClient> {
      const client = await pool.connect();
      const query = (...args: unknown[]) =>
        Array.isArray(args[1])
          ? client.query(args[0] as string, args[1].map(nulFree))
          : (client.query as (...passed: unknown[]) => unknown)(...args);
      return {
        query: query as PostgresPoolClient["query"],
        release: (destroy?: boolean) => client.release(destroy),
      };
    },
    end: () => pool.end(),
  };
}

export function nulFree(value: unknown): unknown {
  return typeof value === "string" && value.includes("\u0000") ? value.replaceAll("\u0000", "\uFFFD") : value;
}
