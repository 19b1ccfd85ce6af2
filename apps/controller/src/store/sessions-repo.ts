/**
 * Console sessions: a cookie's SHA-256 hash bound to the token that signed in. A session is
 * only as good as its token: lookups join the tokens table, so a revoked token's sessions stop
 * working at once even before they are deleted.
 */
import type { Role } from "@nbfleet/shared";
import type { Kysely } from "kysely";
import type { Database } from "./schema.js";

export interface SessionRecord {
  id: string;
  tokenId: string;
  tokenName: string;
  tokenCreatedAt: string;
  role: Role;
  createdAt: string;
  expiresAt: string;
  lastSeenAt: string;
}

export class SessionsRepo {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(session: { id: string; hash: string; tokenId: string; createdAt: string; expiresAt: string }) {
    await this.db
      .insertInto("sessions")
      .values({
        id: session.id,
        hash: session.hash,
        token_id: session.tokenId,
        created_at: session.createdAt,
        expires_at: session.expiresAt,
        last_seen_at: session.createdAt,
      })
      .execute();
  }

  /** The live (unexpired, its token not revoked) session with this hash. */
  async findLiveByHash(hash: string, now: string): Promise<SessionRecord | undefined> {
    const row = await this.selectSessions()
      .where("s.hash", "=", hash)
      .where("s.expires_at", ">", now)
      .executeTakeFirst();
    return row ? toRecord(row) : undefined;
  }

  /** Live sessions, newest first. */
  async listLive(now: string): Promise<SessionRecord[]> {
    const rows = await this.selectSessions()
      .where("s.expires_at", ">", now)
      .orderBy("s.created_at", "desc")
      .orderBy("s.id", "desc")
      .execute();
    return rows.map(toRecord);
  }

  async touch(id: string, at: string): Promise<void> {
    await this.db.updateTable("sessions").set({ last_seen_at: at }).where("id", "=", id).execute();
  }

  async delete(id: string): Promise<boolean> {
    const result = await this.db.deleteFrom("sessions").where("id", "=", id).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  async deleteByToken(tokenId: string): Promise<number> {
    const result = await this.db.deleteFrom("sessions").where("token_id", "=", tokenId).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async deleteExpired(now: string): Promise<number> {
    const result = await this.db.deleteFrom("sessions").where("expires_at", "<=", now).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  private selectSessions() {
    return this.db
      .selectFrom("sessions as s")
      .innerJoin("tokens as t", "t.id", "s.token_id")
      .select([
        "s.id as id",
        "s.token_id as token_id",
        "t.name as token_name",
        "t.role as role",
        "t.created_at as token_created_at",
        "s.created_at as created_at",
        "s.expires_at as expires_at",
        "s.last_seen_at as last_seen_at",
      ]);
  }
}

function toRecord(row: {
  id: string;
  token_id: string;
  token_name: string;
  token_created_at: string;
  role: string;
  created_at: string;
  expires_at: string;
  last_seen_at: string;
}): SessionRecord {
  return {
    id: row.id,
    tokenId: row.token_id,
    tokenName: row.token_name,
    tokenCreatedAt: row.token_created_at,
    role: row.role as Role,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    lastSeenAt: row.last_seen_at,
  };
}
