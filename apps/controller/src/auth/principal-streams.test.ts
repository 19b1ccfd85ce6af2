import { describe, expect, it } from "vitest";
import type { EventFeed } from "../cluster/event-tail.js";
import type { EventListener, FleetEvent } from "../events/bus.js";
import type { SessionRecord } from "../store/sessions-repo.js";
import type { TokenRecord } from "../store/tokens-repo.js";
import { PrincipalStreams, type Revocation } from "./principal-streams.js";

const token = (id: string) => ({ id, name: id, role: "admin", createdAt: "" }) as TokenRecord;
const session = (id: string) => ({ id }) as SessionRecord;

/** A feed the test publishes to, counting its subscribers. */
function fakeFeed() {
  const listeners = new Set<EventListener>();
  const feed: EventFeed = {
    subscribe: (listener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    position: () => undefined,
    flush: async () => {},
    close: () => {},
  };
  const publish = (kind: string, data: Record<string, unknown>) => {
    const event = { id: "evt", kind, data } as unknown as FleetEvent;
    for (const listener of [...listeners]) listener(event);
  };
  return { feed, publish, listeners };
}

describe("streams by principal", () => {
  it("ends a token's streams, a session's streams, each once, and no one else's", () => {
    const streams = new PrincipalStreams(null);
    const ended: Array<[string, Revocation]> = [];
    const open = (name: string, tokenId: string, sessionId: string | null) =>
      streams
        .track({ principal: token(tokenId), session: sessionId ? session(sessionId) : null })
        .endWith((revoked) => ended.push([name, revoked]));
    open("bearer", "tok_a", null);
    open("cookie", "tok_a", "ses_1");
    open("other-cookie", "tok_a", "ses_2");
    open("other-token", "tok_b", null);

    expect(streams.revoke({ kind: "session", id: "ses_1" })).toBe(1);
    expect(streams.revoke({ kind: "token", id: "tok_a" })).toBe(2);
    expect(streams.revoke({ kind: "session", id: "ses_1" })).toBe(0);
    expect(ended.map(([name, r]) => `${name} ${r.kind}`)).toEqual([
      "cookie session",
      "bearer token",
      "other-cookie token",
    ]);
    expect(streams.size).toBe(1);
  });

  it("ends at once a stream that registers just after its token was revoked, until that is old", () => {
    let now = 1_000_000;
    const streams = new PrincipalStreams(null, () => now);
    streams.revoke({ kind: "token", id: "tok_a" });
    const late = streams.track({ principal: token("tok_a"), session: null });
    expect(late.revoked).toEqual({ kind: "token", id: "tok_a" });
    expect(() => late.refuseIfRevoked()).toThrow(expect.objectContaining({ code: "NBF_AUTH_INVALID" }));
    let told: Revocation | null = null;
    late.endWith((revoked) => {
      told = revoked;
    });
    expect(told).toEqual({ kind: "token", id: "tok_a" });
    expect(streams.size).toBe(0);
    now += 60_000;
    expect(streams.track({ principal: token("tok_a"), session: null }).revoked).toBeNull();
  });

  it("follows the feed only while it holds a stream, and acts on other replicas' revocations", () => {
    const { feed, publish, listeners } = fakeFeed();
    const streams = new PrincipalStreams(feed);
    expect(listeners.size).toBe(0);
    const first = streams.track({ principal: token("tok_a"), session: session("ses_1") });
    const second = streams.track({ principal: token("tok_b"), session: null });
    expect(listeners.size).toBe(1);
    publish("token.revoked", {});
    publish("session.created", { sessionId: "ses_1" });
    expect(first.revoked).toBeNull();
    publish("session.revoked", { sessionId: "ses_1" });
    expect(first.revoked).toEqual({ kind: "session", id: "ses_1" });
    second.release();
    expect(listeners.size).toBe(0);
    expect(streams.size).toBe(0);
  });
});
