import { setTimeout as sleep } from "node:timers/promises";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { fakeConsoleBuild } from "@nbfleet/testkit/fake-console-build";
import { call } from "@nbfleet/testkit/http";
import { type Hints, hostile, validish } from "@nbfleet/testkit/schema-arbitrary";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import { eventually } from "@nbfleet/testkit/wait";
/**
 * Schema-driven fuzzing of the whole HTTP API with fast-check: every registered route
 * (`app.routeTable`), its path parameters, query and body drawn from its own TypeBox schemas —
 * valid-ish values (real VM names mixed in) and hostile ones (wrong types, out of range,
 * unknown and `__proto__` fields, missing fields, oversized and control-character strings, bad
 * JSON). Sent with an admin token over a real socket, so authorization lets everything reach
 * validation and the handlers. Asserted: never a 5xx, never a hang, a body the schema refuses
 * is refused, and a refused request (4xx) leaves the fleet exactly as it was.
 */
import { Ajv } from "ajv";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteEntry } from "../auth/hook.js";

type Schema = Record<string, unknown>;
const FLEET = ["fz-a", "fz-b", "fz-c"];
const TRANSITIONAL = new Set(["provisioning", "starting", "stopping", "restarting", "deleting"]);
const ajv = new Ajv({ strict: false, coerceTypes: false, useDefaults: true });

let controller: TestController;
let hints: Hints;

beforeAll(async () => {
  // A console build of its own: a clean checkout has none, and its pages would answer 503.
  controller = await startTestController({
    provider: new SimProvider(),
    settings: { consoleDir: fakeConsoleBuild() },
  });
  const { app, adminToken: token } = controller;
  for (const [i, name] of FLEET.entries()) {
    const res = await call(app, "POST", "/v1/vms", {
      token,
      body: { name, labels: { team: i % 2 ? "b" : "a" } },
    });
    expect(res.statusCode).toBe(201);
  }
  const viewer = (
    await call(app, "POST", "/v1/tokens", { token, body: { name: "fz-viewer", role: "viewer" } })
  ).json();
  const restart = (await call(app, "POST", "/v1/vms/fz-a/notebook/restart", { token })).json();
  hints = {
    name: FLEET,
    id: [viewer.id, restart.id, "nope"],
    vm: FLEET,
    labels: ["team=a", "team=b,env!=prod", "!team"],
    role: ["viewer", "operator", "admin"],
    action: ["notebook.restart", "notebook.stop", "vm.restart"],
  };
  await settle();
});
// Closing stops what the fuzzed requests started: 13 ms here on a quiet machine. It once took
// more than 10 s in a loaded CI run: fast-check's time limit abandons a run mid-request or
// mid-settle, and a rolling operation then left waiting at its health gate held the close for
// two 5 s deadlines (fixed: a runner's stop ends its gates; see operations/rolling-shutdown.test).
afterAll(async () => {
  await controller?.close();
});

/** The fleet as far as a request could change it; agents' own reports are left out. */
async function snapshot(): Promise<string> {
  const { db } = controller.app.nbfleet.store;
  await controller.app.nbfleet.store.writer.flush();
  const [vms, labels, tokens, secrets, commands, operations, policies, sessions] = await Promise.all([
    db
      .selectFrom("vms")
      .select(["name", "state", "labels", "password_hash", "provider"])
      .orderBy("name")
      .execute(),
    db.selectFrom("vm_labels").selectAll().orderBy("vm_name").orderBy("key").execute(),
    db.selectFrom("tokens").select(["id", "name", "role", "hash"]).orderBy("id").execute(),
    db.selectFrom("agent_secrets").select(["hash", "vm_name"]).orderBy("hash").execute(),
    db.selectFrom("commands").select(["id", "vm_name", "name", "params"]).orderBy("id").execute(),
    db.selectFrom("operations").select(["id"]).orderBy("id").execute(),
    db.selectFrom("policies").selectAll().execute(),
    db.selectFrom("terminal_sessions").select(["id"]).orderBy("id").execute(),
  ]);
  return JSON.stringify({ vms, labels, tokens, secrets, commands, operations, policies, sessions });
}

/** After a request that did something: let its consequences finish before the next snapshot. */
async function settle(): Promise<void> {
  const { app, adminToken: token } = controller;
  const { db } = app.nbfleet.store;
  for (const op of await db
    .selectFrom("operations")
    .select("id")
    .where("state", "in", ["pending", "running"])
    .execute()) {
    await call(app, "POST", `/v1/operations/${op.id}/cancel`, { token });
  }
  // An idle policy fuzzed on would stop machines behind the test's back.
  const policy = (await call(app, "GET", "/v1/policies/idle", { token })).json() as { enabled: boolean };
  if (policy.enabled)
    await call(app, "PUT", "/v1/policies/idle", { token, body: { enabled: false, rules: [] } });
  await eventually(
    async () => {
      const busyVms = await db.selectFrom("vms").select(["name", "state"]).execute();
      const busyOps = await db
        .selectFrom("operations")
        .select("id")
        .where("state", "in", ["pending", "running"])
        .execute();
      return busyVms.filter((vm) => TRANSITIONAL.has(vm.state)).length + busyOps.length;
    },
    (busy) => busy === 0,
    10_000,
  );
  // Then until nothing moves any more (agents connecting, bootstrap tokens traded).
  let last = await snapshot();
  let same = 0;
  const deadline = Date.now() + 10_000;
  while (same < 2) {
    if (Date.now() > deadline) throw new Error("the fleet did not settle within 10 s");
    await sleep(25);
    const now = await snapshot();
    same = now === last ? same + 1 : 0;
    last = now;
  }
}

interface FuzzRequest {
  route: RouteEntry;
  params: unknown;
  query: unknown;
  body: unknown;
  /** Sent instead of JSON when set: broken JSON or the wrong content type. */
  raw?: { text: string; contentType: string };
}

function part(route: RouteEntry, key: "params" | "querystring" | "body"): Schema | undefined {
  return (route.schema as Record<string, Schema | undefined> | undefined)?.[key];
}

function requestArbitrary(routes: RouteEntry[], mode: "validish" | "hostile"): fc.Arbitrary<FuzzRequest> {
  const byKey = new Map(routes.map((r) => [`${r.method} ${r.url}`, r]));
  return fc.constantFrom(...byKey.keys()).chain((key) => {
    const route = byKey.get(key)!;
    const draw = (schema: Schema | undefined, hostileToo: boolean) => {
      if (!schema)
        return hostileToo ? fc.oneof(fc.constant(undefined), hostile({}, hints)) : fc.constant(undefined);
      return hostileToo ? fc.oneof(validish(schema, hints), hostile(schema, hints)) : validish(schema, hints);
    };
    const hostileMode = mode === "hostile";
    return fc.record({
      // Printed as "METHOD /url" in a counterexample, not as its whole schema.
      route: fc.constant(
        Object.assign(Object.create(route) as RouteEntry, { [fc.toStringMethod]: () => key }),
      ),
      params: draw(part(route, "params"), hostileMode),
      query: draw(part(route, "querystring"), hostileMode),
      body: draw(part(route, "body"), hostileMode),
      raw: hostileMode
        ? fc.option(
            fc.record({
              text: fc.constantFrom(
                "{",
                '{"name": "x",}',
                "null",
                "[1,2",
                "\u0000",
                "name=x&labels=y",
                "{}".repeat(5000),
              ),
              contentType: fc.constantFrom(
                "application/json",
                "text/plain",
                "application/x-www-form-urlencoded",
                "application/json; charset=utf-16",
              ),
            }),
            { freq: 4, nil: undefined },
          )
        : fc.constant(undefined),
    });
  });
}

/** encodeURIComponent, also for strings with lone surrogates (sent as their UTF-8 replacement). */
function encode(text: string): string {
  try {
    return encodeURIComponent(text);
  } catch {
    return encodeURIComponent(Buffer.from(text, "utf8").toString("utf8"));
  }
}

function urlOf(request: FuzzRequest): string {
  const params = (request.params ?? {}) as Record<string, unknown>;
  let path = request.route.url.replace(/:(\w+)/g, (_, key: string) => {
    const value = typeof params === "object" && params !== null ? params[key] : params;
    return encode(typeof value === "string" ? value : (JSON.stringify(value) ?? ""));
  });
  const query = request.query;
  if (query === undefined) return path;
  if (typeof query === "object" && query !== null && !Array.isArray(query)) {
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      for (const item of Array.isArray(value) ? value : [value]) {
        search.append(key, typeof item === "string" ? item : (JSON.stringify(item) ?? ""));
      }
    }
    const text = search.toString();
    return text ? `${path}?${text}` : path;
  }
  path += `?${encode(typeof query === "string" ? query : (JSON.stringify(query) ?? ""))}`;
  return path;
}

/** One request; streams (events, log follow) are cut once their status is known. */
async function send(request: FuzzRequest): Promise<{ status: number; text: string }> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 10_000);
  const headers: Record<string, string> = { authorization: `Bearer ${controller.adminToken}` };
  let body: string | undefined;
  if (request.raw && request.route.method !== "GET") {
    body = request.raw.text;
    headers["content-type"] = request.raw.contentType;
  } else if (request.body !== undefined && request.route.method !== "GET") {
    body = JSON.stringify(request.body);
    headers["content-type"] = "application/json";
  }
  try {
    const res = await fetch(`${controller.url}${urlOf(request)}`, {
      method: request.route.method,
      headers,
      body,
      signal: abort.signal,
    });
    const streaming =
      res.headers.get("content-type")?.includes("event-stream") ||
      res.headers.get("transfer-encoding") === "chunked";
    const text = streaming && res.status < 300 ? "" : await res.text();
    if (streaming) await res.body?.cancel().catch(() => {});
    return { status: res.status, text };
  } catch (error) {
    throw new Error(`${request.route.method} ${urlOf(request)}: no answer (${(error as Error).message})`);
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

function describeRequest(request: FuzzRequest): string {
  return `${request.route.method} ${urlOf(request)} body=${request.raw ? JSON.stringify(request.raw) : JSON.stringify(request.body)?.slice(0, 300)}`;
}

/** The property both runs check; returns after settling when the request changed the fleet. */
const seen = { runs: 0, ok: 0, refused: 0, routes: new Set<string>() };

async function checkOne(request: FuzzRequest): Promise<void> {
  const before = await snapshot();
  const { status, text } = await send(request);
  seen.runs++;
  seen.routes.add(`${request.route.method} ${request.route.url}`);
  if (status < 400) seen.ok++;
  else seen.refused++;
  const what = `${describeRequest(request)} → ${status} ${text.slice(0, 300)}`;
  expect(status, what).toBeLessThan(500);
  const bodySchema = part(request.route, "body");
  if (bodySchema && request.body !== undefined && !request.raw && request.route.method !== "GET") {
    const valid = ajv.validate(bodySchema, structuredClone(request.body));
    if (!valid) expect(status, `a body the schema refuses was taken: ${what}`).toBeGreaterThanOrEqual(400);
  }
  // A refusal changes nothing, and neither does any read.
  if (status >= 400 || request.route.method === "GET") {
    const after = await snapshot();
    const why = status >= 400 ? "a refused request" : "a GET";
    if (after !== before) expect(diff(before, after), `${why} changed the fleet: ${what}`).toEqual([]);
  } else {
    await settle();
  }
}

describe("API fuzzing (fast-check, from the route schemas)", () => {
  const routes = () => controller.app.routeTable.filter((r) => r.url !== "/v1/agent/connect");

  // Bounded by time as well as runs, so the suite stays quick on a busy machine; the counts
  // below make sure the time bought a real sample.
  const run = async (mode: "validish" | "hostile", numRuns: number) => {
    Object.assign(seen, { runs: 0, ok: 0, refused: 0, routes: new Set<string>() });
    await fc.assert(fc.asyncProperty(requestArbitrary(routes(), mode), checkOne), {
      numRuns,
      interruptAfterTimeLimit: 12_000,
      markInterruptAsFailure: false,
    });
    console.log(
      `fuzz ${mode}: ${seen.runs} requests over ${seen.routes.size} routes, ${seen.ok} taken, ${seen.refused} refused`,
    );
    expect(seen.runs).toBeGreaterThanOrEqual(Math.min(numRuns, 100));
    expect(seen.routes.size).toBeGreaterThanOrEqual(Math.min(routes().length, 20));
  };

  it("answers valid-ish requests without a 5xx, and refusals change nothing", async () => {
    await run("validish", 300);
    expect(seen.ok).toBeGreaterThan(0);
  });

  it("survives hostile requests: no 5xx, bodies the schema refuses refused, refusals change nothing", async () => {
    await run("hostile", 400);
  });
});

/** The top-level parts of two snapshots that differ, with both sides. */
function diff(before: string, after: string): Array<{ part: string; before: unknown; after: unknown }> {
  const a = JSON.parse(before) as Record<string, unknown>;
  const b = JSON.parse(after) as Record<string, unknown>;
  return Object.keys(a)
    .filter((key) => JSON.stringify(a[key]) !== JSON.stringify(b[key]))
    .map((part) => ({ part, before: a[part], after: b[part] }));
}
