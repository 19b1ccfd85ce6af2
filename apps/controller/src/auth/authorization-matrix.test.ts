/**
 * Every route × every kind of caller, generated from the routes the controller actually
 * registered (`app.routeTable`), so a new route cannot skip it: a route missing from ACCESS
 * below (or listed there but gone) fails the test, and each route is called by no token, an
 * unknown token, an agent credential, and viewer, operator and admin tokens, expecting exactly
 * the refusals its access allows. The route's own `config.role` is the one place its access is
 * declared; ACCESS is what we mean it to be.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { call } from "@nbfleet/testkit/http";
import { SimAgent, SimConnectError } from "@nbfleet/testkit/sim-agent";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONSOLE_ROUTES } from "../api/console/plugin.js";
import type { RouteAccess, RouteEntry } from "./hook.js";
import { type Role, roleAllows } from "./roles.js";

const ACCESS: Record<string, RouteAccess> = {
  "GET /healthz": "public",
  "GET /metrics": "public",
  "GET /docs": "public",
  "GET /docs/json": "public",
  "GET /v1/agent/artifact": "public",
  "GET /v1/agent/artifact/info": "public",
  "GET /v1/agent/artifacts": "viewer",
  "POST /v1/agent/artifacts": "admin",
  "GET /v1/agent/artifacts/:version/file": "public",
  "GET /v1/agent/connect": "agent",
  "GET /v1/vms": "viewer",
  "POST /v1/vms": "operator",
  "GET /v1/vms/:name": "viewer",
  "DELETE /v1/vms/:name": "operator",
  "POST /v1/vms/:name/start": "operator",
  "POST /v1/vms/:name/stop": "operator",
  "POST /v1/vms/:name/restart": "operator",
  "GET /v1/vms/:name/commands": "viewer",
  "POST /v1/vms/:name/bootstrap-token": "admin",
  "POST /v1/vms/:name/notebook/start": "operator",
  "POST /v1/vms/:name/notebook/stop": "operator",
  "POST /v1/vms/:name/notebook/restart": "operator",
  "POST /v1/vms/:name/notebook/password": "operator",
  "POST /v1/vms/:name/notebook/certificate": "operator",
  "GET /v1/vms/:name/logs": "viewer",
  "GET /v1/vms/:name/shell": "admin",
  "GET /v1/terminal-sessions": "admin",
  "GET /v1/commands/:id": "viewer",
  "GET /v1/events": "viewer",
  "POST /v1/operations": "operator",
  "GET /v1/operations": "viewer",
  "GET /v1/operations/:id": "viewer",
  "POST /v1/operations/:id/cancel": "operator",
  "GET /v1/policies/idle": "viewer",
  "PUT /v1/policies/idle": "admin",
  "GET /v1/replicas": "viewer",
  "GET /v1/fleet/summary": "viewer",
  "POST /v1/fleet/teardown": "admin",
  "POST /v1/tokens": "admin",
  "GET /v1/tokens": "admin",
  "DELETE /v1/tokens/:id": "admin",
  "POST /v1/session": "public",
  "GET /v1/session": "viewer",
  "DELETE /v1/session": "viewer",
  "GET /v1/sessions": "admin",
  "DELETE /v1/sessions/:id": "admin",
  // The web console's pages (503 saying how to build it when there is no build).
  "GET /": "public",
  "GET /sign-in": "public",
  "GET /vms/:name": "public",
  "GET /operations": "public",
  "GET /operations/:id": "public",
  "GET /events": "public",
  "GET /tokens": "public",
  "GET /policies": "public",
  "GET /assets/*": "public",
};

type Caller = "none" | "unknown" | "agent" | Role;
const CALLERS: Caller[] = ["none", "unknown", "agent", "viewer", "operator", "admin"];
const AUTH_CODES = ["NBF_AUTH_REQUIRED", "NBF_AUTH_INVALID", "NBF_AUTH_AGENT_CREDENTIAL", "NBF_FORBIDDEN"];

/** The refusal a caller must get from a route with this access, or null when it may pass. */
function expectedRefusal(access: RouteAccess, caller: Caller): { status: number; code: string } | null {
  if (access === "public") return null;
  if (caller === "none") return { status: 401, code: "NBF_AUTH_REQUIRED" };
  if (caller === "unknown") return { status: 401, code: "NBF_AUTH_INVALID" };
  if (caller === "agent") return { status: 403, code: "NBF_AUTH_AGENT_CREDENTIAL" };
  if (access === "agent") throw new Error("agent routes are checked over WebSocket");
  if (access === "replica") throw new Error("replica routes exist only with PostgreSQL (relay tests)");
  return roleAllows(caller, access) ? null : { status: 403, code: "NBF_FORBIDDEN" };
}

/** A URL for the route: parameters name nothing that exists, so allowed calls change nothing. */
function concreteUrl(route: RouteEntry): string {
  return route.url
    .replace(/:name/g, "ghost")
    .replace(/:id/g, "nope")
    .replace(/:(\w+)/g, "x");
}

let controller: TestController;
const secrets: Partial<Record<Caller, string>> = {};

beforeAll(async () => {
  const dataDir = makeDataDir();
  const artifact = join(dataDir, "agent.tar.gz");
  writeFileSync(artifact, "not really an artifact");
  const provider = new SimProvider();
  controller = await startTestController({
    provider,
    artifact: { file: artifact, sha256: "0".repeat(64), bytes: 22, version: "0.0.0-test" },
  });
  const { app, adminToken } = controller;
  secrets.admin = adminToken;
  secrets.unknown = "nbf_this-token-was-never-issued";
  for (const role of ["viewer", "operator"] as const) {
    const res = await call(app, "POST", "/v1/tokens", { token: adminToken, body: { name: role, role } });
    secrets[role] = res.json().token;
  }
  await call(app, "POST", "/v1/vms", { token: adminToken, body: { name: "matrix" } });
  secrets.agent = (await provider.connected("matrix")).credential!;
});
afterAll(async () => {
  await controller?.close();
});

/** Status and error code of one call over a real socket; streams are cut after their headers. */
async function probe(method: string, url: string, secret: string | undefined) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 10_000);
  try {
    const res = await fetch(`${controller.url}${url}`, {
      method,
      headers: secret ? { authorization: `Bearer ${secret}` } : {},
      signal: abort.signal,
    });
    let code: string | undefined;
    if (res.status >= 400 && res.headers.get("content-type")?.includes("json")) {
      code = ((await res.json()) as { error?: { code?: string } }).error?.code;
    } else {
      await res.body?.cancel();
    }
    return { status: res.status, code };
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
}

describe("authorization matrix", () => {
  it("covers every registered route, and only those", () => {
    const registered = controller.app.routeTable.map((r) => `${r.method} ${r.url}`).sort();
    expect(registered).toEqual(Object.keys(ACCESS).sort());
    for (const route of controller.app.routeTable) {
      expect(route.access, `${route.method} ${route.url}`).toBe(ACCESS[`${route.method} ${route.url}`]);
    }
  });

  it("refuses exactly the callers each route's access excludes", async () => {
    const wrong: string[] = [];
    for (const route of controller.app.routeTable) {
      // What we mean the route to need, not what it declares: a wrong declaration shows here too.
      const access = ACCESS[`${route.method} ${route.url}`];
      if (access === undefined) {
        wrong.push(`${route.method} ${route.url} has no expected access`);
        continue;
      }
      if (access === "agent") continue;
      const url = concreteUrl(route);
      for (const caller of CALLERS) {
        const { status, code } = await probe(route.method, url, secrets[caller]);
        const refusal = expectedRefusal(access, caller);
        const cell = `${route.method} ${route.url} as ${caller}: ${status} ${code ?? ""}`;
        const consoleUnbuilt = status === 503 && CONSOLE_ROUTES.includes(route.url as never);
        if (status >= 500 && !consoleUnbuilt) wrong.push(`${cell} (a server error)`);
        else if (refusal && (status !== refusal.status || code !== refusal.code))
          wrong.push(`${cell}, expected ${refusal.status} ${refusal.code}`);
        else if (!refusal && code !== undefined && AUTH_CODES.includes(code))
          wrong.push(`${cell}, expected to pass authorization`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("lets only an agent credential through the agent gateway", async () => {
    const agentRoutes = Object.entries(ACCESS).filter(([, access]) => access === "agent");
    expect(agentRoutes.map(([key]) => key)).toEqual(["GET /v1/agent/connect"]);
    for (const route of controller.app.routeTable.filter((r) => ACCESS[`${r.method} ${r.url}`] === "agent")) {
      for (const caller of CALLERS) {
        const agent = new SimAgent({
          url: controller.url,
          token: secrets[caller] ?? "",
          hostname: "matrix",
          reconnect: { minMs: 10, maxMs: 10 },
        });
        const outcome = await agent.connect().then(
          (welcome) => ({ vm: welcome.vmName }),
          (error: unknown) => ({ error }),
        );
        agent.close();
        if (caller === "agent") expect(outcome, `${route.url} as agent`).toEqual({ vm: "matrix" });
        else
          expect((outcome as { error?: unknown }).error, `${route.url} as ${caller}`).toBeInstanceOf(
            SimConnectError,
          );
      }
    }
  });
});
