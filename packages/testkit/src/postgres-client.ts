/**
 * One-off PostgreSQL access for tests and benchmarks (the kit carries `pg`): a query on a
 * connection of its own, and a LISTEN that counts the notifications on a channel.
 */
import pg from "pg";

export async function queryRows<T>(databaseUrl: string, text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return (await client.query(text, values)).rows as T[];
  } finally {
    await client.end();
  }
}

export interface NotificationCount {
  count: number;
  bytes: number;
  /** Per `k` field of a JSON payload (the replicas' signal kind); `?` for anything else. */
  byKind: Record<string, number>;
}

/** Counts the notifications on `channel` from now until `stop()`. */
export async function countNotifications(
  databaseUrl: string,
  channel: string,
): Promise<{ stop(): Promise<NotificationCount> }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const counted: NotificationCount = { count: 0, bytes: 0, byKind: {} };
  client.on("notification", (message) => {
    if (message.channel !== channel) return;
    counted.count++;
    counted.bytes += Buffer.byteLength(message.payload ?? "");
    const kind = kindOf(message.payload);
    counted.byKind[kind] = (counted.byKind[kind] ?? 0) + 1;
  });
  await client.query(`LISTEN "${channel.replace(/"/g, '""')}"`);
  return {
    async stop() {
      // Notifications sent before this query arrive before its answer.
      await client.query("select 1");
      await client.end();
      return counted;
    },
  };
}

function kindOf(payload: string | undefined): string {
  try {
    const kind = (JSON.parse(payload ?? "") as { k?: unknown }).k;
    return typeof kind === "string" ? kind : "?";
  } catch {
    return "?";
  }
}
