import { createHash } from "node:crypto";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { call } from "@nbfleet/testkit/http";
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { selfSignedPair } from "@nbfleet/testkit/test-ca";
import { eventually } from "@nbfleet/testkit/wait";
import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import WebSocket from "ws";

let controller: TestController;
afterEach(async () => {
  await controller?.close();
});

const sha256 = (value: string) => createHash("sha256").update(value, "utf8").digest("hex");

/** Signs in with a token; returns the cookie's value and the whole Set-Cookie header. */
async function signIn(token: string, headers: Record<string, string> = {}) {
  const res = await call(controller.app, "POST", "/v1/session", { body: { token }, headers });
  expect(res.statusCode, res.body).toBe(200);
  const setCookie = String(res.headers["set-cookie"]);
  const value = /^nbf_session=([^;]+);/.exec(setCookie)?.[1];
  expect(value).toMatch(/^[A-Za-z0-9_-]{43}$/);
  return { value: value!, setCookie, session: res.json().session };
}

async function newToken(
  role: "viewer" | "operator" | "admin",
  name: string = role,
): Promise<{ id: string; token: string }> {
  const res = await call(controller.app, "POST", "/v1/tokens", {
    token: controller.adminToken,
    body: { name, role },
  });
  return res.json();
}

/** `GET /v1/events` over a socket with a session cookie: its status, and whether it ended. */
function cookieEventStream(url: string, value: string) {
  let ended = false;
  const req = httpRequest(`${url}/v1/events`, { agent: false, headers: { cookie: `nbf_session=${value}` } });
  const status = new Promise<number>((resolve, reject) => {
    req.on("response", (res) => {
      res.resume();
      res.on("close", () => {
        ended = true;
      });
      resolve(res.statusCode ?? 0);
    });
    req.on("error", reject);
  });
  req.end();
  return { status, isEnded: () => ended, close: () => req.destroy() };
}

const withCookie = (value: string, extra: Record<string, string> = {}) => ({
  headers: { cookie: `nbf_session=${value}`, ...extra },
});
/** The Origin this controller is reached at by inject (Host: localhost:80, the default port). */
const OWN = { origin: "http://localhost" };

describe.each(STORE_DIALECTS)("console sessions on %s", (dialect) => {
  it("signs in, reads, signs out; the cookie is HttpOnly, Strict, Max-Age and stored only hashed", async () => {
    controller = await startTestController({
      settings: { ...(await freshStoreLocation(dialect)), sessionTtlSec: 600 },
      listen: false,
    });
    const { app } = controller;
    const operator = await newToken("operator", "ops-laptop");
    const { value, setCookie, session } = await signIn(operator.token);
    expect(setCookie).toContain("HttpOnly");
    expect(setCookie).toContain("SameSite=Strict");
    expect(setCookie).toContain("Path=/");
    expect(setCookie).toContain("Max-Age=600");
    expect(setCookie).not.toContain("Secure");
    expect(session).toMatchObject({ role: "operator", tokenId: operator.id, tokenName: "ops-laptop" });
    const ttl = Date.parse(session.expiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(590_000);
    expect(ttl).toBeLessThanOrEqual(600_000);

    const read = await call(app, "GET", "/v1/session", withCookie(value));
    expect(read.statusCode).toBe(200);
    expect(read.json().session).toEqual(session);
    // The cookie works for the API like the token does.
    expect((await call(app, "GET", "/v1/vms", withCookie(value))).statusCode).toBe(200);

    // Stored hashed: the raw value is in no row of any table.
    const rows = await app.nbfleet.store.db.selectFrom("sessions").selectAll().execute();
    expect(rows.map((r) => r.hash)).toEqual([sha256(value)]);
    for (const table of await app.nbfleet.store.db.introspection.getTables()) {
      const all = await sql`select * from ${sql.table(table.name)}`.execute(app.nbfleet.store.db);
      expect(JSON.stringify(all.rows), table.name).not.toContain(value);
    }

    const out = await call(app, "DELETE", "/v1/session", withCookie(value, OWN));
    expect(out.statusCode).toBe(204);
    expect(String(out.headers["set-cookie"])).toMatch(/^nbf_session=; Max-Age=0;.*HttpOnly/);
    const after = await call(app, "GET", "/v1/session", withCookie(value));
    expect(after.statusCode).toBe(401);
    expect(after.json().error.code).toBe("NBF_SESSION_INVALID");
    expect(await app.nbfleet.store.db.selectFrom("sessions").selectAll().execute()).toEqual([]);
  });

  it("refuses a wrong token with no cookie, and a bearer caller on the cookie-only routes", async () => {
    controller = await startTestController({ settings: await freshStoreLocation(dialect), listen: false });
    const { app, adminToken } = controller;
    const wrong = await call(app, "POST", "/v1/session", { body: { token: "nbf_never-issued" } });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json().error.code).toBe("NBF_AUTH_INVALID");
    expect(wrong.headers["set-cookie"]).toBeUndefined();
    const missing = await call(app, "POST", "/v1/session", { body: {} });
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error.details.field).toBe("token");
    expect((await call(app, "GET", "/v1/session")).json().error.code).toBe("NBF_AUTH_REQUIRED");
    const bearer = await call(app, "GET", "/v1/session", { token: adminToken });
    expect(bearer.statusCode).toBe(401);
    expect(bearer.json().error.code).toBe("NBF_SESSION_REQUIRED");
    expect(await app.nbfleet.store.db.selectFrom("sessions").selectAll().execute()).toEqual([]);
  });

  it("expires sessions, and revoking a token revokes its sessions", async () => {
    controller = await startTestController({
      settings: { ...(await freshStoreLocation(dialect)), sessionTtlSec: 60 },
      listen: false,
    });
    const { app, adminToken } = controller;
    const viewer = await newToken("viewer");
    const first = await signIn(viewer.token);
    const second = await signIn(viewer.token);
    const other = await signIn(adminToken);
    // Expiry: moved into the past in the store (the TTL's minimum is a minute).
    await app.nbfleet.store.db
      .updateTable("sessions")
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .where("id", "=", first.session.id)
      .execute();
    const expired = await call(app, "GET", "/v1/vms", withCookie(first.value));
    expect(expired.statusCode).toBe(401);
    expect(expired.json().error.code).toBe("NBF_SESSION_INVALID");
    expect((await call(app, "GET", "/v1/vms", withCookie(second.value))).statusCode).toBe(200);

    expect((await call(app, "DELETE", `/v1/tokens/${viewer.id}`, { token: adminToken })).statusCode).toBe(
      204,
    );
    const revoked = await call(app, "GET", "/v1/vms", withCookie(second.value));
    expect(revoked.statusCode).toBe(401);
    expect(revoked.json().error.code).toBe("NBF_SESSION_INVALID");
    const left = await app.nbfleet.store.db.selectFrom("sessions").select("id").execute();
    expect(left.map((r) => r.id)).toEqual([other.session.id]);
  });

  it("lets admins list and revoke sessions, and no one else", async () => {
    controller = await startTestController({ settings: await freshStoreLocation(dialect), listen: false });
    const { app, adminToken } = controller;
    const operator = await newToken("operator", "alice");
    const alice = await signIn(operator.token);
    const admin = await signIn(adminToken);

    const list = await call(app, "GET", "/v1/sessions", withCookie(admin.value));
    expect(list.statusCode).toBe(200);
    const items = list.json().items as Array<Record<string, string>>;
    expect(items.map((i) => i.id).sort()).toEqual([alice.session.id, admin.session.id].sort());
    const entry = items.find((i) => i.id === alice.session.id)!;
    expect(entry).toMatchObject({ tokenId: operator.id, tokenName: "alice", role: "operator" });
    expect(Object.keys(entry).sort()).toEqual(
      ["createdAt", "expiresAt", "id", "lastSeenAt", "role", "tokenId", "tokenName"].sort(),
    );
    expect(JSON.stringify(items)).not.toContain(alice.value);

    const denied = await call(app, "GET", "/v1/sessions", withCookie(alice.value));
    expect(denied.statusCode).toBe(403);
    expect(denied.json().error.code).toBe("NBF_FORBIDDEN");
    const notMine = await call(
      app,
      "DELETE",
      `/v1/sessions/${admin.session.id}`,
      withCookie(alice.value, OWN),
    );
    expect(notMine.statusCode).toBe(403);

    const revoke = await call(app, "DELETE", `/v1/sessions/${alice.session.id}`, { token: adminToken });
    expect(revoke.statusCode).toBe(204);
    expect((await call(app, "GET", "/v1/vms", withCookie(alice.value))).statusCode).toBe(401);
    const again = await call(app, "DELETE", `/v1/sessions/${alice.session.id}`, { token: adminToken });
    expect(again.statusCode).toBe(404);
    expect(again.json().error.code).toBe("NBF_SESSION_NOT_FOUND");
  });
});

describe("console session streams", () => {
  it("end when their session is revoked or signed out; the token's other sessions keep theirs", async () => {
    controller = await startTestController();
    const { app, url } = controller;
    const operator = await newToken("operator", "alice");
    const [revokedByAdmin, signingOut, staying] = [
      await signIn(operator.token),
      await signIn(operator.token),
      await signIn(operator.token),
    ];
    const streams = [revokedByAdmin, signingOut, staying].map((s) => cookieEventStream(url, s.value));
    for (const stream of streams) expect(await stream.status).toBe(200);
    await eventually(
      async () => app.nbfleet.streams.size,
      (n) => n === 3,
    );

    const revoke = await call(app, "DELETE", `/v1/sessions/${revokedByAdmin.session.id}`, {
      token: controller.adminToken,
    });
    expect(revoke.statusCode).toBe(204);
    await eventually(
      async () => streams[0]!.isEnded(),
      (ended) => ended,
      3000,
    );
    const signOut = await call(app, "DELETE", "/v1/session", withCookie(signingOut.value, OWN));
    expect(signOut.statusCode).toBe(204);
    await eventually(
      async () => streams[1]!.isEnded(),
      (ended) => ended,
      3000,
    );
    expect(streams[2]!.isEnded()).toBe(false);
    expect(app.nbfleet.streams.size).toBe(1);
    await app.nbfleet.store.writer.flush();
    const events = await app.nbfleet.store.events.list({ after: "", limit: 1000 });
    expect(events.filter((e) => e.kind === "session.revoked").map((e) => e.data)).toEqual([
      { sessionId: revokedByAdmin.session.id },
      { sessionId: signingOut.session.id },
    ]);
    streams[2]!.close();
  });
});

describe("session cookie, hostile", () => {
  it("refuses cookie writes without this controller's Origin, and changes nothing", async () => {
    controller = await startTestController({ listen: false });
    const { app, adminToken } = controller;
    const admin = await signIn(adminToken);
    const body = { name: "csrf", role: "admin" };
    const extras: Record<string, string>[] = [
      {},
      { origin: "https://evil.example" },
      { origin: "null" },
      { origin: "http://localhost:8080" },
      { origin: "https://localhost" },
    ];
    for (const extra of extras) {
      const res = await call(app, "POST", "/v1/tokens", { body, ...withCookie(admin.value, extra) });
      expect(res.statusCode, JSON.stringify(extra)).toBe(403);
      expect(res.json().error.code).toBe("NBF_ORIGIN_REFUSED");
    }
    const signOut = await call(
      app,
      "DELETE",
      "/v1/session",
      withCookie(admin.value, { origin: "https://evil.example" }),
    );
    expect(signOut.statusCode).toBe(403);
    const tokens = (await call(app, "GET", "/v1/tokens", { token: adminToken })).json().items;
    expect(tokens.map((t: { name: string }) => t.name)).not.toContain("csrf");
    expect((await call(app, "GET", "/v1/session", withCookie(admin.value))).statusCode).toBe(200);

    // The same write from the controller's own origin passes; a bearer token needs no Origin.
    const own = await call(app, "POST", "/v1/tokens", { body, ...withCookie(admin.value, OWN) });
    expect(own.statusCode).toBe(201);
    const cli = await call(app, "POST", "/v1/tokens", {
      token: adminToken,
      body: { name: "cli", role: "viewer" },
    });
    expect(cli.statusCode).toBe(201);
    // A cross-site sign-in (login CSRF) is refused too.
    const foreign = await call(app, "POST", "/v1/session", {
      body: { token: adminToken },
      headers: { origin: "https://evil.example" },
    });
    expect(foreign.statusCode).toBe(403);
    expect(foreign.headers["set-cookie"]).toBeUndefined();
  });

  it("accepts NBFLEET_PUBLIC_URL's origin, and keeps roles: a viewer's cookie on an operator route is 403", async () => {
    controller = await startTestController({
      settings: { publicUrl: "https://fleet.example.com" },
      listen: false,
    });
    const { app } = controller;
    const viewer = await signIn((await newToken("viewer")).token);
    const res = await call(app, "POST", "/v1/vms", {
      body: { name: "nope" },
      ...withCookie(viewer.value, { origin: "https://fleet.example.com" }),
    });
    expect(res.statusCode).toBe(403);
    expect(res.json().error.code).toBe("NBF_FORBIDDEN");
    expect((await call(app, "GET", "/v1/vms/nope", withCookie(viewer.value))).statusCode).toBe(404);
  });

  it("throttles an address's failed sign-ins after ten, never a valid token, and no other address", async () => {
    controller = await startTestController({ listen: false });
    const { app, adminToken } = controller;
    const signInFrom = (remoteAddress: string, token: string) =>
      app.inject({ method: "POST", url: "/v1/session", remoteAddress, payload: { token } });
    for (let i = 0; i < 10; i++) {
      const wrong = await signInFrom("203.0.113.7", `nbf_guess-${i}`);
      expect(wrong.statusCode, `guess ${i}`).toBe(401);
    }
    for (const token of ["nbf_guess-10", "nbfa_agent-guess"]) {
      const refused = await signInFrom("203.0.113.7", token);
      expect(refused.statusCode).toBe(429);
      expect(refused.json().error.code).toBe("NBF_SIGN_IN_THROTTLED");
      expect(Number(refused.headers["retry-after"])).toBeGreaterThan(0);
      expect(refused.headers["set-cookie"]).toBeUndefined();
    }
    // Others behind the same address (a NAT, a load balancer) still sign in with valid tokens.
    const valid = await signInFrom("203.0.113.7", adminToken);
    expect(valid.statusCode, valid.body).toBe(200);
    expect(String(valid.headers["set-cookie"])).toMatch(/^nbf_session=/);
    expect((await signInFrom("203.0.113.7", "nbf_guess-11")).statusCode).toBe(429);
    expect((await signInFrom("203.0.113.8", adminToken)).statusCode).toBe(200);
  });

  it("answers 401 to forged, unknown and malformed cookies", async () => {
    controller = await startTestController({ listen: false });
    const { app } = controller;
    for (const cookie of [
      "nbf_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
      "nbf_session=x",
      "nbf_session=%00%ff; other=1",
      `nbf_session=${"a".repeat(4000)}`,
    ]) {
      const res = await call(app, "GET", "/v1/vms", { headers: { cookie } });
      expect(res.statusCode, cookie.slice(0, 40)).toBe(401);
      expect(res.json().error.code).toBe("NBF_SESSION_INVALID");
    }
    // Other cookies alone are no credential.
    const other = await call(app, "GET", "/v1/vms", { headers: { cookie: "theme=dark" } });
    expect(other.json().error.code).toBe("NBF_AUTH_REQUIRED");
  });

  it("marks the cookie Secure when served over TLS", async () => {
    const pair = await selfSignedPair(makeDataDir("nbf-session-tls-", 0o700), "controller");
    controller = await startTestController({ settings: { tlsCert: pair.cert, tlsKey: pair.key } });
    const body = JSON.stringify({ token: controller.adminToken });
    const setCookie = await new Promise<string>((resolve, reject) => {
      const req = httpsRequest(
        `${controller.url}/v1/session`,
        { method: "POST", rejectUnauthorized: false, headers: { "content-type": "application/json" } },
        (res) => {
          res.resume();
          resolve(String(res.headers["set-cookie"]));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
    expect(controller.url).toMatch(/^https:/);
    expect(setCookie).toMatch(
      /^nbf_session=[A-Za-z0-9_-]{43}; Max-Age=43200; Path=\/; HttpOnly; Secure; SameSite=Strict$/,
    );
  });

  it("refuses a cookie WebSocket upgrade to the shell from a foreign Origin", async () => {
    controller = await startTestController();
    const { adminToken, url } = controller;
    const admin = await signIn(adminToken);
    const upgrade = (origin: string | undefined) =>
      new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`${url.replace(/^http/, "ws")}/v1/vms/ghost/shell`, {
          headers: { cookie: `nbf_session=${admin.value}`, ...(origin ? { origin } : {}) },
        });
        ws.on("unexpected-response", (_req, res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
          ws.terminate();
        });
        ws.on("open", () => {
          ws.close();
          resolve(101);
        });
        ws.on("error", reject);
      });
    expect(await upgrade("https://evil.example")).toBe(403);
    expect(await upgrade(undefined)).toBe(403);
    // From its own origin the upgrade gets past authentication (to the VM lookup: no such VM).
    expect(await upgrade(url)).toBe(404);
  });
});
