import { STORE_DIALECTS, type StoreLocation, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { CompiledQuery, type Kysely } from "kysely";
import { afterEach, describe, expect, it, vi } from "vitest";
import { claimQueued, claimStatement, strandedQueued, strandedStatement } from "../cluster/command-rows.js";
import { sweepSelect } from "./commands-repo.js";
import { eventIdBound, newId } from "./ids.js";
import { OperationTargetsRepo, listedTargets } from "./operation-targets-repo.js";
import { pruneHistory } from "./retention.js";
import type { Database } from "./schema.js";
import { type Store, openStore } from "./store.js";
import { RECENT_TOKEN_MS } from "./tokens-repo.js";
import { neverConnectedStatus } from "./vms-repo.js";

const stores: Store[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

describe.each(STORE_DIALECTS)("store on %s", (dialect) => {
  async function freshStore(location?: StoreLocation): Promise<Store> {
    const store = await openStore({
      ...(location ?? (await freshStoreLocation(dialect))),
      flushMs: 10_000,
      flushMaxItems: 1000,
    });
    stores.push(store);
    return store;
  }

  it("filters VMs by label, state and health and pages by name", async () => {
    const store = await freshStore();
    for (let i = 0; i < 25; i++) {
      await store.vms.insert({
        name: `vm-${String(i).padStart(2, "0")}`,
        provider: "test",
        state: i % 5 === 0 ? "stopped" : "running",
        labels: { team: i % 2 === 0 ? "a" : "b", tier: "x" },
        passwordHash: null,
      });
    }
    const teamA = await store.vms.list({ labels: { team: "a", tier: "x" }, limit: 100 });
    expect(teamA.map((v) => v.name)).toHaveLength(13);
    expect(teamA.every((v) => v.labels.team === "a")).toBe(true);
    const stopped = await store.vms.list({ state: "stopped", limit: 100 });
    expect(stopped.map((v) => v.name)).toEqual(["vm-00", "vm-05", "vm-10", "vm-15", "vm-20"]);
    const page1 = await store.vms.list({ limit: 10 });
    const page2 = await store.vms.list({ limit: 10, after: page1.at(-1)!.name });
    expect(page2[0]!.name).toBe("vm-10");
    store.writer.putStatus({
      ...neverConnectedStatus("vm-03", new Date().toISOString()),
      health: "unhealthy",
    });
    expect(await store.vms.list({ health: "unhealthy", limit: 100 })).toHaveLength(0);
    await store.writer.flush();
    expect((await store.vms.list({ health: "unhealthy", limit: 100 })).map((v) => v.name)).toEqual(["vm-03"]);
    expect(await store.vms.countByHealth()).toEqual({ unknown: 24, unhealthy: 1 });
  });

  it("pages VMs of one health in name order, whatever order their status was written in", async () => {
    const store = await freshStore();
    const now = new Date().toISOString();
    for (let i = 0; i < 30; i++) {
      await store.vms.insert({
        name: `vm-${String(i).padStart(2, "0")}`,
        provider: "test",
        state: i % 2 === 0 ? "running" : "stopped",
        labels: { ring: String(i % 3) },
        passwordHash: null,
      });
    }
    for (const i of [29, 3, 17, 0, 12, 24, 6, 21, 9]) {
      const name = `vm-${String(i).padStart(2, "0")}`;
      store.writer.putStatus({ ...neverConnectedStatus(name, now), health: "unhealthy" });
    }
    await store.writer.flush();
    const names: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await store.vms.list({ health: "unhealthy", limit: 4, after });
      names.push(...page.map((v) => v.name));
      if (page.length < 4) break;
      after = page.at(-1)!.name;
    }
    expect(names).toEqual(["vm-00", "vm-03", "vm-06", "vm-09", "vm-12", "vm-17", "vm-21", "vm-24", "vm-29"]);
    const mixed = await store.vms.list({
      health: "unhealthy",
      state: "stopped",
      labels: { ring: "0" },
      limit: 10,
    });
    expect(mixed.map((v) => v.name)).toEqual(["vm-03", "vm-09", "vm-21"]);
  });

  it("refuses a duplicate VM name", async () => {
    const store = await freshStore();
    const vm = { name: "dup", provider: "test", state: "running" as const, labels: {}, passwordHash: null };
    await store.vms.insert(vm);
    await expect(store.vms.insert(vm)).rejects.toMatchObject({ code: "NBF_VM_EXISTS" });
    // Two at once both find the name free; the primary key refuses the second (23505 on PostgreSQL).
    await Promise.all(Array.from({ length: 4 }, () => store.vms.exists("warm-up")));
    const racing = await Promise.allSettled([1, 2, 3].map(() => store.vms.insert({ ...vm, name: "race" })));
    expect(racing.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    for (const r of racing)
      if (r.status === "rejected") expect(r.reason).toMatchObject({ code: "NBF_VM_EXISTS" });
  });

  it("coalesces status writes per VM and writes them on flush", async () => {
    const store = await freshStore();
    await store.vms.insert({ name: "a", provider: "test", state: "running", labels: {}, passwordHash: null });
    const now = new Date().toISOString();
    for (let i = 0; i < 50; i++) {
      store.writer.putStatus({
        ...neverConnectedStatus("a", now),
        agent_status: "connected",
        last_seen_at: `${i}`,
      });
    }
    expect(store.writer.pending).toBe(1);
    await store.writer.flush();
    expect((await store.vms.require("a")).status.lastSeenAt).toBe("49");
  });

  it("keeps an exchanged bootstrap token until the agent connects with its credential", async () => {
    const store = await freshStore();
    const later = "2030-01-02T00:00:00.000Z";
    await store.agentSecrets.issueBootstrap("vm1", "boot-hash", later, "2030-01-01T00:00:00.000Z");
    expect(await store.agentSecrets.find("boot-hash")).toMatchObject({
      vmName: "vm1",
      kind: "bootstrap",
      expiresAt: later,
      exchangedAt: null,
    });
    expect(await store.agentSecrets.exchangeBootstrap("boot-hash", "cred-1", later)).toBe("vm1");
    // The welcome with cred-1 was lost: the token is exchanged again, and cred-1 stops working.
    expect(await store.agentSecrets.exchangeBootstrap("boot-hash", "cred-2", later)).toBe("vm1");
    expect(await store.agentSecrets.find("cred-1")).toBeUndefined();
    expect(await store.agentSecrets.find("cred-2")).toMatchObject({ vmName: "vm1", confirmedAt: null });
    expect((await store.agentSecrets.bootstrapOf("vm1"))?.exchangedAt).not.toBeNull();
    // The agent connects with cred-2: the token is consumed, once.
    expect(await store.agentSecrets.confirmCredential("cred-2")).toBe(true);
    expect(await store.agentSecrets.confirmCredential("cred-2")).toBe(false);
    expect(await store.agentSecrets.find("boot-hash")).toBeUndefined();
    expect(await store.agentSecrets.bootstrapOf("vm1")).toBeNull();
    expect(await store.agentSecrets.exchangeBootstrap("boot-hash", "cred-3", later)).toBeUndefined();
    expect((await store.agentSecrets.find("cred-2"))?.confirmedAt).not.toBeNull();
    // A seeded credential needs no confirmation.
    await store.agentSecrets.issueCredential("vm2", "seeded");
    expect(await store.agentSecrets.confirmCredential("seeded")).toBe(false);
  });

  it("moves commands only forward and finishes them once", async () => {
    const store = await freshStore();
    const t = (s: number) => new Date(Date.UTC(2030, 0, 1, 0, 0, s)).toISOString();
    const base = {
      vmName: "vm1",
      name: "notebook.restart" as const,
      params: {},
      timeoutMs: 1000,
      operationId: null,
    };
    const a = await store.commands.insert({ ...base, id: newId("cmd"), createdAt: t(0), expiresAt: t(10) });
    const b = await store.commands.insert({ ...base, id: newId("cmd"), createdAt: t(0), expiresAt: t(5) });
    const owed = await store.commands.deliverableFor(["vm1", "vm9"], t(1));
    expect(owed.get("vm1")?.map((c) => c.id)).toEqual([a.id, b.id]);
    expect(owed.has("vm9")).toBe(false);
    expect(await store.commands.markSent(a.id, t(1))).toBe(true);
    expect(await store.commands.markAcked(a.id, "other-vm", t(2), t(3))).toBe(false);
    expect(await store.commands.markAcked(a.id, "vm1", t(2), t(3))).toBe(true);
    expect(await store.commands.earliestAckedFor(["vm1", "vm9"])).toEqual(new Map([["vm1", t(2)]]));
    expect((await store.commands.deliverableFor(["vm1"], t(2))).get("vm1")?.map((c) => c.id)).toEqual([b.id]);
    expect(await store.commands.markSent(a.id, t(2))).toBe(false);
    expect(await store.commands.finish(a.id, "vm1", { state: "succeeded", result: { pid: 2 } }, t(2))).toBe(
      true,
    );
    expect(await store.commands.earliestAckedFor(["vm1"])).toEqual(new Map());
    expect(await store.commands.finish(a.id, "vm1", { state: "failed" }, t(2))).toBe(false);
    expect(await store.commands.get(a.id)).toMatchObject({
      state: "succeeded",
      result: { pid: 2 },
      attempts: 1,
    });
    expect((await store.commands.expireDue(t(4))).length).toBe(0);
    expect((await store.commands.expireDue(t(6))).map((c) => c.id)).toEqual([b.id]);
    expect((await store.commands.get(b.id))?.state).toBe("expired");
  });

  it("reports each expired command once when two sweeps run at the same moment", async () => {
    const store = await freshStore();
    const t = (s: number) => new Date(Date.UTC(2030, 0, 1, 0, 0, s)).toISOString();
    await store.commands.insertMany(
      Array.from({ length: 300 }, (_, i) => ({
        id: `cmd-${String(i).padStart(3, "0")}`,
        vmName: `vm${i % 7}`,
        name: "notebook.restart" as const,
        params: {},
        createdAt: t(0),
        expiresAt: t(5),
        timeoutMs: 1000,
        operationId: null,
        sentAt: i % 2 ? t(1) : null,
      })),
    );
    // Connections open beforehand, so that both sweeps start at once (PostgreSQL's pool).
    await Promise.all(Array.from({ length: 4 }, () => store.commands.get("warm-up")));
    const sweeps = await Promise.all([store.commands.expireDue(t(6)), store.commands.expireDue(t(6))]);
    const reported = sweeps.flat().map((c) => c.id);
    expect(reported).toHaveLength(300);
    expect(new Set(reported).size).toBe(300);
    expect(sweeps.flat().every((c) => c.state === "expired")).toBe(true);
  });

  it("stores many commands in one commit, with a transaction only when it takes several statements", async () => {
    const store = await freshStore();
    const at = new Date().toISOString();
    const command = (id: string) => restartCommand(id, "vm1", at, null);
    const transactions = vi.spyOn(store.db, "transaction");
    await store.commands.insertMany([command("cmd-one")]);
    expect(transactions).not.toHaveBeenCalled();
    // 300 rows are chunks of 256, 32, 8 and 4: the last chunk repeats an id, and none is kept.
    const many = Array.from({ length: 300 }, (_, i) => command(`cmd-${String(i).padStart(3, "0")}`));
    many[299] = command("cmd-one");
    await expect(store.commands.insertMany(many)).rejects.toThrow();
    expect(transactions).toHaveBeenCalledTimes(1);
    expect((await store.commands.listForVm("vm1", 1000)).map((c) => c.id)).toEqual(["cmd-one"]);
    const finished = await store.commands.finishManyReturning([
      { id: "cmd-one", vmName: "vm1", outcome: { state: "succeeded" }, now: at, ackedAt: null },
    ]);
    expect(finished.map((c) => c?.state)).toEqual(["succeeded"]);
    expect(transactions).toHaveBeenCalledTimes(1);
  });

  it("answers a token found by its hash from memory for a moment, and forgets a revoked one at once", async () => {
    const store = await freshStore();
    const token = { id: "tok_a", name: "a", role: "operator" as const, createdAt: new Date().toISOString() };
    expect(await store.tokens.findByHash("hash-a")).toBeUndefined();
    // A miss is not remembered: the token is found as soon as it exists.
    await store.tokens.insert({ ...token, hash: "hash-a" });
    const now = Date.now();
    expect(await store.tokens.findByHash("hash-a", now)).toEqual(token);
    // Deleted behind the repository's back (as another replica would): still answered until
    // RECENT_TOKEN_MS has passed, then looked up again and refused.
    await store.db.deleteFrom("tokens").where("id", "=", token.id).execute();
    expect(await store.tokens.findByHash("hash-a", now + RECENT_TOKEN_MS - 1)).toEqual(token);
    expect(await store.tokens.findByHash("hash-a", now + RECENT_TOKEN_MS)).toBeUndefined();
    // Revoked through the repository: refused at once.
    await store.tokens.insert({ ...token, hash: "hash-a" });
    expect(await store.tokens.findByHash("hash-a")).toEqual(token);
    expect(await store.tokens.delete(token.id)).toBe(true);
    expect(await store.tokens.findByHash("hash-a")).toBeUndefined();
  });

  it("finishes many commands in chunked statements: the first result wins, another VM's is refused", async () => {
    const store = await freshStore();
    const at = new Date().toISOString();
    const ids = Array.from({ length: 200 }, (_, i) => `cmd-${String(i).padStart(3, "0")}`);
    await store.commands.insertMany(ids.map((id, i) => restartCommand(id, `vm${i}`, at, at)));
    const finished = await store.commands.finishManyReturning([
      // 200 results: chunks of 128, 64 and 8 rows
      ...ids.slice(0, 198).map((id, i) => ({
        id,
        vmName: `vm${i}`,
        outcome: { state: "succeeded" as const, result: { pid: i } },
        now: at,
        ackedAt: i % 2 ? at : null,
      })),
      { id: ids[0]!, vmName: "vm0", outcome: { state: "failed" as const }, now: at, ackedAt: null },
      {
        id: ids[199]!,
        vmName: "not-vm199",
        outcome: { state: "succeeded" as const },
        now: at,
        ackedAt: null,
      },
      { id: "cmd-unknown", vmName: "vm1", outcome: { state: "succeeded" as const }, now: at, ackedAt: null },
    ]);
    expect(finished).toHaveLength(201);
    expect(finished.slice(0, 198).every((c, i) => c?.state === "succeeded" && c.id === ids[i])).toBe(true);
    expect(finished[5]).toMatchObject({ result: { pid: 5 }, ackedAt: at });
    expect(finished[4]?.ackedAt).toBeNull();
    expect(finished.slice(198)).toEqual([undefined, undefined, undefined]);
    expect(await store.commands.get(ids[0]!)).toMatchObject({ state: "succeeded", result: { pid: 0 } });
    expect((await store.commands.get(ids[199]!))?.state).toBe("sent");
    // Once final, a command is never finished again.
    const again = await store.commands.finishManyReturning([
      { id: ids[1]!, vmName: "vm1", outcome: { state: "failed" as const }, now: at, ackedAt: null },
    ]);
    expect(again).toEqual([undefined]);
  });

  it("sweeps through the indexes of live commands only, however many finished ones there are", async () => {
    const store = await freshStore();
    const now = new Date().toISOString();
    const command = (i: number, sentAt: string | null) => numberedCommand(i, now, sentAt);
    // A long finished history beside a few live commands: what the planner sees in production.
    await store.commands.insertMany(Array.from({ length: 4000 }, (_, i) => command(i, now)));
    await store.db.updateTable("commands").set({ state: "succeeded", finished_at: now }).execute();
    await store.commands.insertMany(Array.from({ length: 5 }, (_, i) => command(10_000 + i, null)));
    await store.db.executeQuery(CompiledQuery.raw("analyze"));
    const plan = async (query: ReturnType<typeof sweepSelect>) => {
      const { sql: text, parameters } = query.compile();
      return explain(
        store.db,
        `${dialect === "sqlite" ? "explain query plan" : "explain"} ${text}`,
        parameters,
      );
    };
    expect(
      await plan(sweepSelect(store.db, { from: ["queued", "sent"], dueColumn: "expires_at", now })),
    ).toContain("commands_expiry_live");
    expect(await plan(sweepSelect(store.db, { from: ["acked"], dueColumn: "timeout_at", now }))).toContain(
      "commands_timeout_live",
    );
  });

  it("claims listed commands by primary key, however few live commands the statistics know", async () => {
    const store = await freshStore();
    const now = new Date().toISOString();
    const command = (i: number) => numberedCommand(i, now, null);
    // Statistics taken when every command had finished; then a bulk operation's commands arrive.
    await store.commands.insertMany(Array.from({ length: 4000 }, (_, i) => command(i)));
    await store.db.updateTable("commands").set({ state: "succeeded", finished_at: now }).execute();
    await store.db.executeQuery(CompiledQuery.raw("analyze"));
    await store.commands.insertMany(Array.from({ length: 3000 }, (_, i) => command(10_000 + i)));
    const ids = Array.from({ length: 64 }, (_, i) => command(10_000 + i * 3).id);
    const { sql: text, parameters } = claimStatement(store.db, ids, now).compile();
    const plan = await explain(
      store.db,
      `${dialect === "sqlite" ? "explain query plan" : "explain"} ${text}`,
      parameters,
    );
    expect(plan).not.toContain("commands_expiry_live");
    expect(plan).toMatch(
      dialect === "sqlite" ? /USING INDEX sqlite_autoindex_commands_1 \(id=\?\)/ : /commands_pkey/,
    );
    expect((await claimQueued(store.db, ids, now)).map((c) => c.id)).toEqual(ids);
    expect(await claimQueued(store.db, ids, now)).toEqual([]);
  });

  it("claims listed commands by primary key on a new database, before any statistics exist", async () => {
    const store = await freshStore();
    const now = new Date().toISOString();
    // A first bulk operation's commands in a commands table never analyzed: at PostgreSQL's
    // default random_page_cost, 64 probes looked dearer than reading all 12,000 rows.
    for (let i = 0; i < 12_000; i += 1000)
      await store.commands.insertMany(
        Array.from({ length: 1000 }, (_, j) => numberedCommand(i + j, now, null)),
      );
    const ids = Array.from({ length: 64 }, (_, i) => numberedCommand(6000 + i * 7, now, null).id);
    const { sql: text, parameters } = claimStatement(store.db, ids, now).compile();
    const plan = await explain(
      store.db,
      `${dialect === "sqlite" ? "explain query plan" : "explain"} ${text}`,
      parameters,
    );
    expect(plan).not.toMatch(/Seq Scan|SCAN commands/);
    expect(plan).toMatch(
      dialect === "sqlite" ? /USING INDEX sqlite_autoindex_commands_1 \(id=\?\)/ : /commands_pkey/,
    );
    expect((await claimQueued(store.db, ids, now)).map((c) => c.id)).toEqual(ids);
  });

  it("finds the queued commands of connected agents that waited too long, through the live-command index", async () => {
    const store = await freshStore();
    const now = Date.now();
    const at = (msAgo: number) => new Date(now - msAgo).toISOString();
    // Most agents are connected: the plan must not walk them to find the few queued commands.
    const connected = ["on", ...Array.from({ length: 300 }, (_, i) => `vm${i}`)];
    for (const name of [...connected, "off"]) {
      await store.vms.insert({ name, provider: "test", state: "running", labels: {}, passwordHash: null });
      store.writer.putStatus({
        ...neverConnectedStatus(name, at(0)),
        agent_status: name === "off" ? "disconnected" : "connected",
      });
    }
    await store.writer.flush();
    // A long finished history, as the planner sees it in production.
    await store.commands.insertMany(
      Array.from({ length: 2000 }, (_, i) => numberedCommand(i, at(60_000), null)),
    );
    await store.db
      .updateTable("commands")
      .set({ state: "succeeded", finished_at: at(0) })
      .execute();
    await store.commands.insertMany([
      restartCommand("stranded", "on", at(10_000), null),
      restartCommand("fresh", "on", at(1000), null),
      restartCommand("sent-long-ago", "on", at(10_000), at(10_000)),
      restartCommand("agent-offline", "off", at(10_000), null),
      { ...restartCommand("past-expiry", "on", at(700_000), null) },
    ]);
    await store.db.executeQuery(CompiledQuery.raw("analyze"));
    const found = await strandedQueued(store.db, at(0), at(5000));
    expect(found.map((c) => [c.id, c.state])).toEqual([["stranded", "queued"]]);
    const { sql: text, parameters } = strandedStatement(store.db, at(0), at(5000)).compile();
    const plan = await explain(
      store.db,
      `${dialect === "sqlite" ? "explain query plan" : "explain"} ${text}`,
      parameters,
    );
    expect(plan).toContain("commands_expiry_live");
  });

  it(`keeps data across a reopen of the same ${dialect === "sqlite" ? "data dir" : "database"}`, async () => {
    const location = await freshStoreLocation(dialect);
    const first = await freshStore(location);
    await first.vms.insert({
      name: "kept",
      provider: "test",
      state: "running",
      labels: { a: "b" },
      passwordHash: null,
    });
    await first.close();
    const second = await freshStore(location);
    expect((await second.vms.require("kept")).labels).toEqual({ a: "b" });
  });

  it("orders and pages names and ids byte by byte, as SQLite does, whatever the database's collation", async () => {
    const store = await freshStore();
    // In en-US order (managed PostgreSQL's default) these interleave: upper and lower case
    // together, '-' and '_' ignored at first.
    const names = ["vm_1", "vm-10", "VM-2", "vm-2", "Vm_3", "a-b", "a_b", "ab", "A-c", "vm.1", "vm~1", "vm1"];
    for (const name of names) {
      await store.vms.insert({ name, provider: "test", state: "running", labels: {}, passwordHash: null });
      store.writer.putStatus({
        ...neverConnectedStatus(name, new Date().toISOString()),
        health: "unhealthy",
      });
    }
    await store.writer.flush();
    const byteOrder = [...names].sort();
    expect(await store.vms.names()).toEqual(byteOrder);
    for (const health of [undefined, "unhealthy" as const]) {
      const paged: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await store.vms.list({ limit: 5, after, ...(health ? { health } : {}) });
        paged.push(...page.map((v) => v.name));
        if (page.length < 5) break;
        after = page.at(-1)!.name;
      }
      expect(paged).toEqual(byteOrder);
    }
    expect((await store.vms.list({ limit: 100, after: "vm-2" })).map((v) => v.name)).toEqual(
      byteOrder.filter((name) => name > "vm-2"),
    );
    const events = names.map((name, i) => ({
      id: `evt_${name}`,
      at: new Date(Date.UTC(2030, 0, 1, 0, 0, i)).toISOString(),
      vm_name: name,
      source: "controller",
      kind: "k",
      level: "info",
      message: name,
      data: null,
    }));
    await store.events.insertMany(events);
    const after = (await store.events.list({ after: "evt_a_b", limit: 100 })).map((e) => e.id);
    expect(after).toEqual(
      events
        .map((e) => e.id)
        .sort()
        .filter((id) => id > "evt_a_b"),
    );
  });

  it("stores text with U+0000 (as U+FFFD on PostgreSQL) without failing the batch around it", async () => {
    const store = await freshStore();
    const now = new Date().toISOString();
    await store.vms.insert({
      name: "nul",
      provider: "test",
      state: "running",
      labels: {},
      passwordHash: null,
    });
    store.writer.appendEvent({
      id: newId("evt"),
      at: now,
      vm_name: "nul",
      source: "agent",
      kind: "notebook.log",
      level: "info",
      message: "before\u0000after",
      data: null,
    });
    store.writer.putStatus({ ...neverConnectedStatus("nul", now), health: "unhealthy" });
    await store.writer.flush();
    expect(store.writer.health()).toMatchObject({ status: "ok", pendingRows: 0 });
    const stored = dialect === "sqlite" ? "before\u0000after" : "before\uFFFDafter";
    expect((await store.events.list({ vmName: "nul", limit: 10 })).map((e) => e.message)).toEqual([stored]);
    expect((await store.vms.require("nul")).status.health).toBe("unhealthy");
    const command = await store.commands.insert({
      id: newId("cmd"),
      vmName: "nul",
      name: "notebook.restart",
      params: {},
      createdAt: now,
      expiresAt: "2999-01-01T00:00:00.000Z",
      timeoutMs: 1000,
      operationId: null,
    });
    const [finished] = await store.commands.finishManyReturning([
      {
        id: command.id,
        vmName: "nul",
        outcome: { state: "failed", error: { code: "NBF_X", message: "before\u0000after" } },
        now,
        ackedAt: null,
      },
    ]);
    expect(finished?.error).toEqual({ code: "NBF_X", message: stored });
  });

  it("keeps integers past 32 bits: a long terminal session's bytes and duration", async () => {
    const store = await freshStore();
    const session = {
      id: newId("term"),
      vmName: "big",
      tokenId: "tok",
      tokenName: "admin",
      kind: "shell" as const,
      command: null,
      tty: true,
      openedAt: "2030-01-01T00:00:00.000Z",
      closedAt: null,
      durationMs: null,
      exitCode: null,
      signal: null,
      endReason: null,
      bytesIn: 0,
      bytesOut: 0,
      attaches: 1,
    };
    await store.terminalSessions.insert(session);
    const end = {
      closedAt: "2030-02-05T00:00:00.000Z",
      durationMs: 35 * 86_400_000,
      exitCode: 0,
      signal: null,
      endReason: "exited",
      bytesIn: 5_000_000_000,
      bytesOut: 2 ** 40,
      attaches: 3,
    };
    await store.terminalSessions.finish(session.id, end);
    expect(await store.terminalSessions.get(session.id)).toEqual({ ...session, ...end });
  });

  it("marks every target of a 33,000-VM operation running in one call (statements within the bind limits)", async () => {
    const store = await freshStore();
    const targets = new OperationTargetsRepo(store.db);
    const count = 33_000;
    await targets.insertMany(
      Array.from({ length: count }, (_, seq) => ({
        operationId: "op_big",
        seq,
        vmName: `vm-${seq}`,
        params: null,
      })),
    );
    const seqs = Array.from({ length: count }, (_, seq) => seq);
    const running = await targets.markRunningMany("op_big", seqs, "cmd_op_big-", new Date().toISOString());
    expect(running.size).toBe(count);
    expect((await targets.counts("op_big")).running).toBe(count);
    const [last] = await targets.list("op_big", { afterSeq: count - 2, limit: 1 });
    expect(last).toMatchObject({ seq: count - 1, state: "running", commandId: `cmd_op_big-${count - 1}` });
  });

  it("finds the listed targets of an operation through an index, however few the planner thinks it has", async () => {
    const store = await freshStore();
    const targets = new OperationTargetsRepo(store.db);
    const insert = (operationId: string) =>
      targets.insertMany(
        Array.from({ length: 8000 }, (_, seq) => ({ operationId, seq, vmName: `vm-${seq}`, params: null })),
      );
    // Statistics of finished operations only; then a new one whose targets are all pending.
    for (let i = 0; i < 4; i++) await insert(`op_done${i}`);
    await store.db.updateTable("operation_targets").set({ state: "succeeded" }).execute();
    if (dialect === "postgres") await store.db.executeQuery(CompiledQuery.raw("analyze"));
    await insert("op_new");
    const seqs = Array.from({ length: 256 }, (_, i) => 500 + i * 2);
    const { sql: text, parameters } = listedTargets(store.db, "op_new", seqs, "pending")
      .set({ state: "running" })
      .compile();
    // The plan for these values, and on PostgreSQL also the generic one a prepared statement
    // uses after five runs (the list then bound as parameters, not constants).
    const plans =
      dialect === "sqlite"
        ? [await explain(store.db, `explain query plan ${text}`, parameters)]
        : await store.db.connection().execute(async (db) => {
            const literals = parameters.map((p) => (typeof p === "number" ? String(p) : `'${p}'`)).join(", ");
            await db.executeQuery(CompiledQuery.raw(`prepare start_plan as ${text}`));
            await db.executeQuery(CompiledQuery.raw("set plan_cache_mode = force_generic_plan"));
            const generic = await explain(db, `explain execute start_plan(${literals})`, []);
            await db.executeQuery(CompiledQuery.raw("reset plan_cache_mode; deallocate start_plan"));
            return [await explain(db, `explain ${text}`, parameters), generic];
          });
    for (const plan of plans) {
      // The index is searched by seq, not read for every pending target of the operation.
      if (dialect === "sqlite")
        expect(plan).toMatch(/^SEARCH operation_targets USING INDEX \S+ \([^)]*seq[<>=]/);
      else expect(plan).toMatch(/Index Cond: [^;]*seq >=/);
    }
    // The same statement says whose VM still exists (one VM of the list does).
    await store.vms.insert({
      name: "vm-502",
      provider: "t",
      state: "running",
      labels: {},
      passwordHash: null,
    });
    const running = await targets.markRunningMany("op_new", seqs, null, new Date().toISOString());
    expect([...running.keys()].sort((a, b) => a - b)).toEqual(seqs);
    expect([...running].filter(([, t]) => t.vmExists).map(([seq]) => seq)).toEqual([502]);
    expect((await targets.counts("op_new")).running).toBe(256);
  });

  it("confirms a credential once when two connections confirm it at the same moment", async () => {
    const store = await freshStore();
    const later = "2999-01-01T00:00:00.000Z";
    for (let i = 0; i < 5; i++) {
      await store.agentSecrets.issueBootstrap(`vm${i}`, `boot-${i}`, later);
      await store.agentSecrets.exchangeBootstrap(`boot-${i}`, `cred-${i}`, later);
      const both = await Promise.all([
        store.agentSecrets.confirmCredential(`cred-${i}`),
        store.agentSecrets.confirmCredential(`cred-${i}`),
      ]);
      expect(both.sort()).toEqual([false, true]);
    }
  });

  it("deletes events that arrived long ago (whatever time their agent reported) and old finished commands", async () => {
    const store = await freshStore();
    const old = "2020-01-01T00:00:00.000Z";
    const now = new Date().toISOString();
    const event = (id: string, at: string, message: string) => ({
      id,
      at,
      vm_name: "a",
      source: "agent" as const,
      kind: "k",
      level: "info" as const,
      message,
      data: null,
    });
    // An event's age is its id's (stamped on the cluster's clock), not the `at` an agent reports.
    await store.events.insertMany([
      event(eventIdAt(Date.parse(old)), old, "old"),
      event(eventIdAt(Date.parse(old)), "9999-12-31T23:59:59.999Z", "old, from a clock far ahead"),
      event(newId("evt"), now, "new"),
      event(newId("evt"), "0001-01-01T00:00:00.000Z", "new, from a clock far behind"),
    ]);
    const base = { vmName: "a", name: "diagnose" as const, params: {}, timeoutMs: 1000, operationId: null };
    const done = await store.commands.insert({ ...base, id: newId("cmd"), createdAt: old, expiresAt: old });
    const pending = await store.commands.insert({
      ...base,
      id: newId("cmd"),
      createdAt: old,
      expiresAt: "2999-01-01T00:00:00.000Z",
    });
    await store.commands.expireDue("2020-01-02T00:00:00.000Z");
    const result = await pruneHistory(store.db, new Date(Date.now() - 86_400_000));
    expect(result).toEqual({ events: 2, commands: 1 });
    expect((await store.events.list({ limit: 10 })).map((e) => e.message).sort()).toEqual([
      "new",
      "new, from a clock far behind",
    ]);
    expect(await store.commands.get(done.id)).toBeUndefined();
    expect((await store.commands.get(pending.id))?.state).toBe("queued");
  });
});

describe("ids", () => {
  it("makes ids that sort by creation", () => {
    const ids = Array.from({ length: 2000 }, () => newId("evt"));
    expect([...ids].sort()).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

/** An event id as one made at `ms` on the cluster's clock (newId never goes back in time). */
function eventIdAt(ms: number): string {
  return `${eventIdBound(ms)}000${Math.random().toString(36).slice(2, 12).padEnd(10, "0")}`;
}

/** A notebook restart for insertMany, created `at` and expiring ten minutes later. */
function restartCommand(id: string, vmName: string, at: string, sentAt: string | null) {
  return {
    id,
    vmName,
    name: "notebook.restart" as const,
    params: {},
    createdAt: at,
    expiresAt: new Date(Date.parse(at) + 600_000).toISOString(),
    timeoutMs: 1000,
    operationId: null,
    sentAt,
  };
}

/** Command number `i` (ids in that order), for one of 50 VMs. */
function numberedCommand(i: number, at: string, sentAt: string | null) {
  return restartCommand(`cmd-${String(i).padStart(5, "0")}`, `vm${i % 50}`, at, sentAt);
}

/** A plan's lines (EXPLAIN or SQLite's EXPLAIN QUERY PLAN) joined with "; ". */
async function explain(
  db: Pick<Kysely<Database>, "executeQuery">,
  text: string,
  parameters: readonly unknown[],
) {
  const result = await db.executeQuery<Record<string, string>>(CompiledQuery.raw(text, [...parameters]));
  return result.rows.map((r) => r.detail ?? r["QUERY PLAN"]).join("; ");
}
