import { setTimeout as sleep } from "node:timers/promises";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { SimProvider } from "@nbfleet/testkit/sim-provider";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";

let controller: TestController | undefined;
afterEach(async () => {
  await controller?.close();
  controller = undefined;
});

/** Counts calls of `object[method]` (the real method still runs). */
function countCalls<T extends object, K extends keyof T>(object: T, method: K): { calls: number } {
  const counter = { calls: 0 };
  const original = object[method] as (...args: unknown[]) => unknown;
  object[method] = ((...args: unknown[]) => {
    counter.calls++;
    return original.apply(object, args);
  }) as T[K];
  return counter;
}

describe("/metrics", () => {
  it("serves cached store figures: a scrape neither flushes pending writes nor counts rows", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider, settings: { metricsRefreshSec: 0.5 } });
    const { app, adminToken: token } = controller;
    const { store } = app.nbfleet;
    const counts = countCalls(store.vms, "countByHealth");
    const flushes = countCalls(store.writer, "flushChanges");

    const scrape = async () => {
      const res = await call(app, "GET", "/metrics");
      expect(res.statusCode).toBe(200);
      return res.body;
    };
    const first = await scrape();
    expect(first).toMatch(/nbfleet_vms\{health="healthy"\} 0/);
    for (let i = 0; i < 50; i++) await scrape();
    // One read of the store (flushing its pending status changes first) for 51 scrapes.
    expect(counts.calls).toBe(1);
    expect(flushes.calls).toBe(1);

    // The figure follows the fleet once it is older than metricsRefreshSec.
    await call(app, "POST", "/v1/vms", { token, body: { name: "m" } });
    await provider.connected("m");

    const started = Date.now();
    const fresh = await eventually(
      scrape,
      (body) => /nbfleet_vms\{health="healthy"\} 1/.test(body),
      5000,
      10,
    );
    expect(fresh).toContain("nbfleet_agents_connected 1");
    const elapsedSec = (Date.now() - started) / 1000;
    // Scraped every 10 ms, the store was still asked at most once per half second (plus the
    // refresh under way when the loop started and ended).
    expect(counts.calls - 1).toBeLessThanOrEqual(Math.ceil(elapsedSec / 0.5) + 2);
    expect(flushes.calls).toBe(counts.calls);
  });

  it("answers from the cache while a refresh is slow", async () => {
    controller = await startTestController({ listen: false, settings: { metricsRefreshSec: 0.05 } });
    const { store } = controller.app.nbfleet;
    await controller.app.inject({ method: "GET", url: "/metrics" });
    let release: () => void = () => {};
    const original = store.vms.countByHealth.bind(store.vms);
    store.vms.countByHealth = async () => {
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      return original();
    };
    await sleep(100);
    const started = Date.now();
    for (let i = 0; i < 5; i++) {
      const res = await controller.app.inject({ method: "GET", url: "/metrics" });
      expect(res.statusCode).toBe(200);
      expect(res.body).toMatch(/nbfleet_vms\{health="unknown"\} 0/);
    }
    expect(Date.now() - started).toBeLessThan(1000);
    release();
  });

  it("asks for a viewer token when metricsAccess is viewer", async () => {
    const provider = new SimProvider();
    controller = await startTestController({ provider, settings: { metricsAccess: "viewer" } });
    const { app, adminToken } = controller;
    const anonymous = await call(app, "GET", "/metrics");
    expect(anonymous.statusCode).toBe(401);
    expect(anonymous.json().error.code).toBe("NBF_AUTH_REQUIRED");
    const viewer = (
      await call(app, "POST", "/v1/tokens", {
        token: adminToken,
        body: { name: "prometheus", role: "viewer" },
      })
    ).json().token;
    const scraped = await call(app, "GET", "/metrics", { token: viewer });
    expect(scraped.statusCode).toBe(200);
    expect(scraped.body).toContain("nbfleet_agents_connected");
    await call(app, "POST", "/v1/vms", { token: adminToken, body: { name: "a" } });
    const agent = await provider.connected("a");
    const byAgent = await call(app, "GET", "/metrics", { token: agent.credential! });
    expect(byAgent.statusCode).toBe(403);
    // /healthz stays open for load balancers.
    expect((await call(app, "GET", "/healthz")).statusCode).toBe(200);
  });
});
