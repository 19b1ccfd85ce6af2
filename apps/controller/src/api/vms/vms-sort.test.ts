import { HEALTH_SEVERITY, SORT_ORDERS, VM_SORT_KEYS, type VmSortKey } from "@nbfleet/shared";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { call } from "@nbfleet/testkit/http";
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { afterEach, describe, expect, it } from "vitest";
import { neverConnectedStatus } from "../../store/vms-repo.js";

let controller: TestController;
afterEach(async () => {
  await controller?.close();
});

interface Seed {
  name: string;
  state: "running" | "stopped" | "failed";
  labels: Record<string, string>;
  agent: "connected" | "disconnected" | "never_connected";
  health: (typeof HEALTH_SEVERITY)[number];
  notebook: { state: string; restarts: number } | null;
  lastSeenAt: string | null;
}

/**
 * 31 VMs with many ties under every key, names whose order differs between byte order and a
 * locale's ('-' and '_' are ignored there at first, upper case sorts beside lower case).
 */
function seeds(): Seed[] {
  const names = [
    "b-1",
    "b1",
    "b_1",
    "B2",
    "a",
    "a-a",
    "aa",
    "z",
    ...Array.from({ length: 23 }, (_, i) => `vm-${i}`),
  ];
  const notebookStates = ["running", "stopped", "failed", "Starting"];
  return names.map((name, i) => ({
    name,
    state: (["running", "stopped", "failed"] as const)[i % 3]!,
    labels: {
      team: i % 2 === 0 ? "a" : "b",
      ...(i % 3 === 0 ? { env: "prod" } : i % 3 === 1 ? { env: "dev" } : {}),
      ...(i % 4 === 0 ? { gpu: "yes" } : {}),
    },
    agent: (["connected", "disconnected", "never_connected"] as const)[i % 3]!,
    health: HEALTH_SEVERITY[(i * 7) % 4]!,
    notebook: i % 5 === 4 ? null : { state: notebookStates[i % 4]!, restarts: (i * 3) % 4 },
    lastSeenAt: i % 6 === 5 ? null : new Date(Date.UTC(2026, 11, 1, 0, (i * 5) % 9)).toISOString(),
  }));
}

function sortedValue(seed: Seed, key: VmSortKey): string | number {
  switch (key) {
    case "name":
      return seed.name;
    case "state":
      return seed.state;
    case "agent":
      return seed.agent;
    case "notebook":
      return seed.notebook?.state ?? "";
    case "health":
      return HEALTH_SEVERITY.indexOf(seed.health);
    case "restarts":
      return seed.notebook?.restarts ?? 0;
    case "lastSeen":
      return seed.lastSeenAt ?? "";
  }
}

/** The order the API promises: the key's value (byte order for text), then name A to Z. */
function expected(all: Seed[], key: VmSortKey, order: "asc" | "desc"): string[] {
  const sign = order === "asc" ? 1 : -1;
  const cmp = (x: string | number, y: string | number) => (x < y ? -1 : x > y ? 1 : 0);
  return [...all]
    .sort((a, b) => {
      if (key === "name") return sign * cmp(a.name, b.name);
      return sign * cmp(sortedValue(a, key), sortedValue(b, key)) || cmp(a.name, b.name);
    })
    .map((s) => s.name);
}

async function seeded(dialect: (typeof STORE_DIALECTS)[number]): Promise<Seed[]> {
  controller = await startTestController({ settings: await freshStoreLocation(dialect), listen: false });
  const { store } = controller.app.nbfleet;
  const all = seeds();
  const now = new Date().toISOString();
  for (const seed of all) {
    await store.vms.insert({
      name: seed.name,
      provider: "sim",
      state: seed.state,
      labels: seed.labels,
      passwordHash: null,
    });
    store.writer.putStatus({
      ...neverConnectedStatus(seed.name, now),
      agent_status: seed.agent,
      health: seed.health,
      last_seen_at: seed.lastSeenAt,
      notebook: seed.notebook && JSON.stringify(seed.notebook),
    });
  }
  await store.writer.flush();
  return all;
}

async function list(query: string) {
  const res = await call(controller.app, "GET", `/v1/vms?${query}`, { token: controller.adminToken });
  return { status: res.statusCode, body: res.json() };
}

async function allPages(query: string, limit: number): Promise<string[]> {
  const names: string[] = [];
  let cursor: string | null = null;
  do {
    const page = await list(`${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`);
    expect(page.status, JSON.stringify(page.body)).toBe(200);
    expect(page.body.items.length).toBeLessThanOrEqual(limit);
    names.push(...page.body.items.map((vm: { name: string }) => vm.name));
    cursor = page.body.nextCursor;
  } while (cursor);
  return names;
}

describe.each(STORE_DIALECTS)("VM list sorting on %s", (dialect) => {
  it("pages through every VM exactly once, in order, under each sort key and order", async () => {
    const all = await seeded(dialect);
    for (const key of VM_SORT_KEYS) {
      for (const order of SORT_ORDERS) {
        const want = expected(all, key, order);
        for (const limit of [1, 4, 100]) {
          expect(await allPages(`sort=${key}&order=${order}`, limit), `${key} ${order} by ${limit}`).toEqual(
            want,
          );
        }
      }
    }
    // The defaults: by name, ascending; order alone applies to the name.
    expect(await allPages("sort=name", 5)).toEqual(expected(all, "name", "asc"));
    expect(await allPages("order=desc", 5)).toEqual(expected(all, "name", "desc"));
    // The view shows the values sorted on.
    const byRestarts = (await list("sort=restarts&order=desc&limit=3")).body.items;
    expect(byRestarts.map((vm: { notebook: { restarts: number } }) => vm.notebook.restarts)).toEqual([
      3, 3, 3,
    ]);
  });

  it("sorts within a filter, keeps the cursor's filter and sort, and filters by a label expression", async () => {
    const all = await seeded(dialect);
    const matching = (pick: (s: Seed) => boolean) => all.filter(pick);
    for (const key of ["health", "restarts", "lastSeen", "name"] as const) {
      expect(await allPages(`sort=${key}&order=desc&health=unhealthy`, 2)).toEqual(
        expected(
          matching((s) => s.health === "unhealthy"),
          key,
          "desc",
        ),
      );
      expect(await allPages(`sort=${key}&state=stopped&labels=team=a`, 2)).toEqual(
        expected(
          matching((s) => s.state === "stopped" && s.labels.team === "a"),
          key,
          "asc",
        ),
      );
    }
    const cases: Array<[string, (s: Seed) => boolean]> = [
      ["team=a", (s) => s.labels.team === "a"],
      ["team=a,env!=prod", (s) => s.labels.team === "a" && s.labels.env !== "prod"],
      ["env!=prod", (s) => s.labels.env !== "prod"],
      ["!env", (s) => s.labels.env === undefined],
      ["gpu", (s) => s.labels.gpu !== undefined],
      ["gpu, team == b", (s) => s.labels.gpu !== undefined && s.labels.team === "b"],
      ["team=a,team=b", () => false],
      ["team=c", () => false],
    ];
    for (const [expression, pick] of cases) {
      expect(await allPages(`labels=${encodeURIComponent(expression)}&sort=restarts`, 3), expression).toEqual(
        expected(matching(pick), "restarts", "asc"),
      );
    }
    // The older repeatable label=k=v still works, and combines with the expression.
    expect(await allPages(`label=team=a&labels=${encodeURIComponent("!env")}`, 50)).toEqual(
      expected(
        matching((s) => s.labels.team === "a" && s.labels.env === undefined),
        "name",
        "asc",
      ),
    );
  });

  it("refuses a bad sort, order, label expression or a cursor of another sort, naming the parameter", async () => {
    await seeded(dialect);
    for (const [query, field] of [
      ["sort=colour", "sort"],
      ["sort=", "sort"],
      ["order=up", "order"],
      ["sort=health&order=DESC", "order"],
    ] as const) {
      const res = await list(query);
      expect(res.status, query).toBe(400);
      expect(res.body.error, query).toMatchObject({ code: "NBF_INVALID_QUERY", details: { field } });
      expect(res.body.error.message, query).toContain(field);
    }
    for (const [expression, problem] of [
      ["team=a,,env=b", "an empty term"],
      ["=a", "is neither"],
      ["bad key!=x", "is not a label key"],
    ] as const) {
      const res = await list(`labels=${encodeURIComponent(expression)}`);
      expect(res.status, expression).toBe(400);
      expect(res.body.error, expression).toMatchObject({
        code: "NBF_SELECTOR_INVALID",
        details: { field: "labels", expression },
      });
      expect(res.body.error.message).toContain(problem);
    }
    const empty = await list("labels=");
    expect(empty.status).toBe(400);
    expect(empty.body.error.details.field).toBe("labels");

    const cursorOf = async (query: string) => (await list(`${query}&limit=2`)).body.nextCursor as string;
    const byHealth = await cursorOf("sort=health");
    const byName = await cursorOf("sort=name");
    const forged = Buffer.from(
      JSON.stringify({ after: "a", sort: "restarts", order: "asc", value: "many" }),
    ).toString("base64url");
    for (const query of [
      `sort=restarts&cursor=${byHealth}`,
      `sort=health&order=desc&cursor=${byHealth}`,
      `sort=health&cursor=${byName}`,
      `cursor=${byHealth}`,
      `sort=restarts&cursor=${forged}`,
      "sort=lastSeen&cursor=bm90LWpzb24",
    ]) {
      const res = await list(query);
      expect(res.status, query).toBe(400);
      expect(res.body.error.code, query).toBe("NBF_CURSOR_INVALID");
    }
    expect((await list(`sort=health&cursor=${byHealth}`)).status).toBe(200);
  });
});
