/**
 * `GET /v1/vms?certExpiresWithinDays=N` on both dialects, with agents that report certificates
 * ending at different times over the real protocol (the filter reads what they reported).
 */
import type { AgentState } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { SimAgent } from "@nbfleet/testkit/sim-agent";
import { STORE_DIALECTS, type StoreDialect, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { eventually } from "@nbfleet/testkit/wait";
import { afterEach, describe, expect, it } from "vitest";
import type { Provider, ProviderVm, ProvisionContext, ProvisionResult } from "../../providers/types.js";

const DAY_MS = 86_400_000;

/** A simulated agent whose served certificate ends at `notAfter` (a date-time as sent; null: none). */
class CertificateAgent extends SimAgent {
  notAfter: string | null = null;

  override state(): AgentState {
    const state = super.state();
    const certificate = state.notebook.certificate;
    state.notebook.certificate =
      this.notAfter === null || certificate === null ? null : { ...certificate, notAfter: this.notAfter };
    return state;
  }
}

/** Machines are CertificateAgents reporting the certificate end `certificates` names for them. */
class CertificateProvider implements Provider {
  readonly name = "cert-sim";
  readonly agents = new Map<string, CertificateAgent>();

  constructor(private readonly certificates: Record<string, string | null>) {}

  async create(vm: ProviderVm, context: ProvisionContext): Promise<ProvisionResult> {
    const agent = new CertificateAgent({
      url: context.controllerUrl,
      token: context.bootstrapToken,
      hostname: vm.name,
      reconnect: { minMs: 20, maxMs: 500 },
    });
    agent.notAfter = this.certificates[vm.name] ?? null;
    this.agents.set(vm.name, agent);
    await agent.connect();
    return { notebookUrl: null };
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async restart(): Promise<void> {}
  async delete(vm: ProviderVm): Promise<void> {
    this.agents.get(vm.name)?.terminate();
  }
  async close(): Promise<void> {
    for (const agent of this.agents.values()) agent.terminate();
  }
}

let controller: TestController | undefined;
afterEach(async () => {
  await controller?.close();
  controller = undefined;
});

const inDays = (days: number) => new Date(Date.now() + days * DAY_MS);

async function fleet(dialect: StoreDialect) {
  const certificates: Record<string, string | null> = {
    expired: inDays(-2).toISOString(),
    d5: inDays(5).toISOString(),
    // Another offset and no milliseconds: stored as UTC, so text order stays time order.
    d29: inDays(29.5)
      .toISOString()
      .replace(/\.\d{3}Z$/, "Z"),
    d31: `${inDays(31.5).toISOString().slice(0, 10)}T23:30:00-05:00`,
    d400: inDays(400).toISOString(),
    none: null,
  };
  const provider = new CertificateProvider(certificates);
  controller = await startTestController({
    settings: { ...(await freshStoreLocation(dialect)), pingIntervalSec: 0.2 },
    provider,
  });
  const c = controller;
  for (const [i, name] of Object.keys(certificates).entries()) {
    const res = await call(c.app, "POST", "/v1/vms", {
      token: c.adminToken,
      body: { name, labels: { team: i % 2 === 0 ? "a" : "b" } },
    });
    expect(res.statusCode, res.body).toBe(201);
  }
  // A machine whose agent never connected has reported nothing.
  provider.create = async () => ({ notebookUrl: null });
  await call(c.app, "POST", "/v1/vms", { token: c.adminToken, body: { name: "silent" } });
  // Every connected agent's first report is stored.
  await eventually(
    () => names(c, "certExpiresWithinDays=3650"),
    (got) => got.length === 5,
  );
  return { c, provider };
}

async function names(c: TestController, query: string): Promise<string[]> {
  const res = await call(c.app, "GET", `/v1/vms?${query}`, { token: c.adminToken });
  expect(res.statusCode, res.body).toBe(200);
  return res.json().items.map((vm: { name: string }) => vm.name);
}

async function allPages(c: TestController, query: string): Promise<string[]> {
  const out: string[] = [];
  let cursor: string | null = null;
  do {
    const res = await call(c.app, "GET", `/v1/vms?${query}&limit=1${cursor ? `&cursor=${cursor}` : ""}`, {
      token: c.adminToken,
    });
    expect(res.statusCode, res.body).toBe(200);
    out.push(...res.json().items.map((vm: { name: string }) => vm.name));
    cursor = res.json().nextCursor;
  } while (cursor);
  return out;
}

describe.each(STORE_DIALECTS)("VMs by certificate expiry on %s", (dialect) => {
  it("lists the VMs whose reported certificate ends within N days, expired ones included, none without one", async () => {
    const { c } = await fleet(dialect);
    expect(await names(c, "")).toEqual(["d29", "d31", "d400", "d5", "expired", "none", "silent"]);
    expect(await names(c, "certExpiresWithinDays=0")).toEqual(["expired"]);
    expect(await names(c, "certExpiresWithinDays=1")).toEqual(["expired"]);
    expect(await names(c, "certExpiresWithinDays=6")).toEqual(["d5", "expired"]);
    expect(await names(c, "certExpiresWithinDays=30")).toEqual(["d29", "d5", "expired"]);
    expect(await names(c, "certExpiresWithinDays=33")).toEqual(["d29", "d31", "d5", "expired"]);
    expect(await names(c, "certExpiresWithinDays=3650")).toEqual(["d29", "d31", "d400", "d5", "expired"]);
    // With the other filters, and page by page under any sort.
    expect(await names(c, "certExpiresWithinDays=30&labels=team=a")).toEqual(["d29", "expired"]);
    expect(await allPages(c, "certExpiresWithinDays=30")).toEqual(["d29", "d5", "expired"]);
    for (const sort of ["name", "health", "lastSeen", "restarts", "agent"]) {
      for (const order of ["asc", "desc"]) {
        const got = await allPages(c, `certExpiresWithinDays=30&sort=${sort}&order=${order}`);
        expect([...got].sort(), `${sort} ${order}`).toEqual(["d29", "d5", "expired"]);
        expect(got, `${sort} ${order}: each once`).toHaveLength(3);
      }
    }
  });

  it("follows a renewal: a certificate renewed for 90 days leaves the 30-day list", async () => {
    const { c, provider } = await fleet(dialect);
    expect(await names(c, "certExpiresWithinDays=30")).toEqual(["d29", "d5", "expired"]);
    const agent = provider.agents.get("d5")!;
    agent.notAfter = inDays(90).toISOString();
    agent.report();
    await eventually(
      () => names(c, "certExpiresWithinDays=30"),
      (got) => !got.includes("d5"),
    );
    expect(await names(c, "certExpiresWithinDays=30")).toEqual(["d29", "expired"]);
    expect(await names(c, "certExpiresWithinDays=91")).toContain("d5");
  });

  it("refuses a bad N naming the parameter", async () => {
    controller = await startTestController({ settings: await freshStoreLocation(dialect), listen: false });
    for (const value of ["-1", "3651", "abc", "1.5", "", "7days"]) {
      const res = await call(controller.app, "GET", `/v1/vms?certExpiresWithinDays=${value}`, {
        token: controller.adminToken,
      });
      expect(res.statusCode, value).toBe(400);
      expect(res.json().error, value).toMatchObject({
        code: "NBF_INVALID_QUERY",
        details: { field: "certExpiresWithinDays" },
      });
      expect(res.json().error.message, value).toContain("certExpiresWithinDays");
    }
  });
});
