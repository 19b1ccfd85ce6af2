/**
 * The long-lived streams (terminal clients, event streams, log follows) by the token, and the
 * console session, that opened them. Authentication is checked only when a stream opens, so a
 * revocation has to end them here: on the replica that revokes at once (`revoke()`), and on
 * the others through the event feed (`token.revoked` and `session.revoked` carry the id in
 * their data), which a clustered replica follows while it holds any stream.
 *
 * A revocation is remembered for a while, so a stream that authenticated just before it
 * (another replica may accept a revoked token for RECENT_TOKEN_MS) is ended as it registers.
 */
import type { EventFeed } from "../cluster/event-tail.js";
import { NbfError } from "../errors.js";
import type { FleetEvent } from "../events/bus.js";
import type { SessionRecord } from "../store/sessions-repo.js";
import { RECENT_TOKEN_MS, type TokenRecord } from "../store/tokens-repo.js";

export type Revocation = { kind: "token" | "session"; id: string };
/** Ends one stream, telling its client why where its protocol can. */
export type StreamEnder = (revoked: Revocation) => void;

/** Long enough to cover the token cache, a relayed stream's open and the feed's settle delay. */
const REMEMBER_MS = 5 * RECENT_TOKEN_MS + 10_000;

/** The kinds of the events that revoke, and the data field naming what. */
const REVOKING_EVENTS: Record<string, { kind: Revocation["kind"]; field: string }> = {
  "token.revoked": { kind: "token", field: "tokenId" },
  "session.revoked": { kind: "session", field: "sessionId" },
};

/** One registered stream; `release()` when it ends by itself. */
export class TrackedStream {
  revoked: Revocation | null = null;
  private ender: StreamEnder | null = null;

  constructor(
    readonly keys: readonly string[],
    private readonly forget: (stream: TrackedStream) => void,
  ) {}

  /** How the stream ends when revoked: at once if its principal was revoked already. */
  endWith(ender: StreamEnder): void {
    this.ender = ender;
    if (this.revoked) ender(this.revoked);
  }

  /** Before a stream starts: refused as its next request would be, if it was revoked already. */
  refuseIfRevoked(): void {
    if (!this.revoked) return;
    throw new NbfError(this.revoked.kind === "token" ? "NBF_AUTH_INVALID" : "NBF_SESSION_INVALID");
  }

  release(): void {
    this.forget(this);
  }

  /** Called by the registry: ends the stream (once). */
  end(revoked: Revocation): void {
    if (this.revoked) return;
    this.revoked = revoked;
    this.forget(this);
    this.ender?.(revoked);
  }
}

/** Who opened a stream: the request's token and, for a cookie sign-in, its console session. */
export interface StreamOwner {
  principal: TokenRecord | null;
  session: SessionRecord | null;
}

export class PrincipalStreams {
  private readonly streams = new Set<TrackedStream>();
  private readonly byKey = new Map<string, Set<TrackedStream>>();
  private readonly recent = new Map<string, { revocation: Revocation; until: number }>();
  private unfollow: (() => void) | null = null;

  constructor(
    /** Other replicas' revocations (null with one replica: all of them are made here). */
    private readonly feed: EventFeed | null,
    private readonly now: () => number = Date.now,
  ) {}

  /** Streams registered now. */
  get size(): number {
    return this.streams.size;
  }

  track(owner: StreamOwner): TrackedStream {
    const keys: string[] = [];
    if (owner.principal) keys.push(keyOf({ kind: "token", id: owner.principal.id }));
    if (owner.session) keys.push(keyOf({ kind: "session", id: owner.session.id }));
    const stream = new TrackedStream(keys, (s) => this.forget(s));
    const revokedAlready = keys.map((key) => this.recentRevocation(key)).find((r) => r !== undefined);
    if (revokedAlready) {
      stream.end(revokedAlready);
      return stream;
    }
    this.streams.add(stream);
    for (const key of keys) {
      const set = this.byKey.get(key) ?? new Set<TrackedStream>();
      set.add(stream);
      this.byKey.set(key, set);
    }
    if (this.feed && !this.unfollow) this.unfollow = this.feed.subscribe((event) => this.onEvent(event));
    return stream;
  }

  /** Ends the streams of a revoked token or session; how many there were. */
  revoke(revocation: Revocation): number {
    const key = keyOf(revocation);
    this.remember(key, revocation);
    const streams = [...(this.byKey.get(key) ?? [])];
    for (const stream of streams) stream.end(revocation);
    return streams.length;
  }

  close(): void {
    this.unfollow?.();
    this.unfollow = null;
  }

  private onEvent(event: FleetEvent): void {
    const revoking = REVOKING_EVENTS[event.kind];
    const id = revoking ? event.data?.[revoking.field] : undefined;
    if (revoking && typeof id === "string") this.revoke({ kind: revoking.kind, id });
  }

  private forget(stream: TrackedStream): void {
    if (!this.streams.delete(stream)) return;
    for (const key of stream.keys) {
      const set = this.byKey.get(key);
      set?.delete(stream);
      if (set?.size === 0) this.byKey.delete(key);
    }
    // The feed is followed only while there is something to end.
    if (this.streams.size === 0) this.close();
  }

  private remember(key: string, revocation: Revocation): void {
    const now = this.now();
    for (const [known, { until }] of this.recent) if (until <= now) this.recent.delete(known);
    this.recent.set(key, { revocation, until: now + REMEMBER_MS });
  }

  private recentRevocation(key: string): Revocation | undefined {
    const known = this.recent.get(key);
    return known && known.until > this.now() ? known.revocation : undefined;
  }
}

/** The error a revoked stream's client is told (the one its next request would get). */
export function revocationError(revoked: Revocation): { code: string; message: string } {
  return revoked.kind === "token"
    ? {
        code: "NBF_AUTH_INVALID",
        message: `token ${revoked.id} was revoked; the streams opened with it were ended`,
      }
    : {
        code: "NBF_SESSION_INVALID",
        message: `console session ${revoked.id} was signed out or revoked; the streams opened with it were ended (sign in again)`,
      };
}

function keyOf(revocation: Revocation): string {
  return `${revocation.kind}:${revocation.id}`;
}
