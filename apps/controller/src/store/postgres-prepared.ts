/**
 * PostgreSQL parses and plans every unnamed statement anew. The few statement shapes the
 * controller runs thousands of times a second (see query-shapes) are sent as named prepared
 * statements instead: each connection parses a shape once and afterwards only binds new
 * values, which takes about a third of the server's CPU off a bulk operation's writes.
 *
 * Only shapes are named: their texts are few and fixed (a name per text, the same on every
 * connection), so what the server keeps per connection stays bounded. A prepared statement
 * whose result type a migration changed (another replica upgraded first) fails with SQLSTATE
 * 0A000; the connection that holds it is then dropped instead of reused (see postgres-pool).
 */
import { createHash } from "node:crypto";
import type { PostgresPool, PostgresPoolClient } from "kysely";

/** The name a shape's text is prepared under: the same text gets the same name everywhere. */
export function preparedName(text: string): string {
  return `nbf_${createHash("sha1").update(text).digest("base64url")}`;
}

/** Sends the texts `nameOf` names as named statements; every other query passes unchanged. */
export function preparingPool(
  pool: PostgresPool,
  nameOf: (text: string) => string | undefined,
): PostgresPool {
  return {
    async connect(): Promise<PostgresPoolClient> {
      const client = await pool.connect();
      const plain = client.query as (...args: unknown[]) => unknown;
      const query = (...args: unknown[]) => {
        const [text, values] = args;
        const name = typeof text === "string" && Array.isArray(values) ? nameOf(text) : undefined;
        return name === undefined ? plain(...args) : plain({ name, text, values });
      };
      return {
        query: query as PostgresPoolClient["query"],
        release: (destroy?: boolean) => client.release(destroy),
      };
    },
    end: () => pool.end(),
  };
}

/** A prepared statement the schema has changed under ("cached plan must not change result type"). */
export function isStalePreparedStatement(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return code === "0A000" && typeof message === "string" && message.includes("cached plan");
}
