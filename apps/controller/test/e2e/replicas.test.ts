/**
 * Three `nbfleet server` replicas (A, B, C) on one PostgreSQL, behind a TCP balancer that is
 * their public URL, with six real local machines (sandboxes booted by the real bootstrap, real
 * agents, Debian's Jupyter) whose agents land on all three replicas:
 * - any API call works on any replica, whichever one holds the agent (create, health, notebook
 *   restart, terminal, log follow, events);
 * - `kill -9` of the replica holding most agents during a rolling bulk restart: the agents are
 *   re-homed, the operation finishes on another replica, each notebook restarted exactly once;
 * - PostgreSQL stopped for 20 s: the replicas stay up, say so on /healthz, and carry on.
 * The file runs its own PostgreSQL server, since the last part stops it.
 */
import type { CommandView, VmView } from "@nbfleet/shared";
import { type PostgresServer, startPostgres } from "@nbfleet/testkit/postgres";
import { Cluster } from "@nbfleet/testkit/replicas";
import { SseReader } from "@nbfleet/testkit/sse-reader";
import { waitFor } from "@nbfleet/testkit/wait";
import { Waiters } from "@nbfleet/testkit/waiters";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TerminalConnection } from "../../src/cli/terminal-client.js";

const TOKEN = "nbf_e2e-replicas-admin-token-0123456789";
const NAMES = ["rep-0", "rep-1", "rep-2", "rep-3", "rep-4", "rep-5"];
const A = 0;
const B = 1;
const C = 2;

let postgres: PostgresServer;
let cluster: Cluster;

interface OperationView {
  id: string;
  state: string;
  targets: { items: Array<{ vmName: string; state: string; commandId: string | null }> };
}

const live = (state: string) => state === "pending" || state === "running";
const serving = (v: VmView) =>
  v.agent.status === "connected" &&
  v.notebook.state === "running" &&
  (v.health.status === "healthy" || v.health.status === "degraded");

/** A VM as replica `on` sees it. */
const vm = async (on: number, name: string) => {
  const { status, body } = await cluster.api(on)<VmView>("GET", `/v1/vms/${name}`);
  if (status !== 200) throw new Error(`GET /v1/vms/${name} on replica ${on}: ${status}`);
  return body;
};

/** Command `id` as replica `on` sees it once finished (long polls of at most 60 s, the API's limit). */
async function finished(on: number, id: string): Promise<{ status: number; body: CommandView }> {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const got = await cluster.api(on)<CommandView>("GET", `/v1/commands/${id}?wait=60`);
    if (got.status !== 200 || got.body.finishedAt !== null || Date.now() > deadline) return got;
  }
}

/** Every VM serving as replica `on` sees it, and each agent held by a running replica. */
async function allServing(on: number, timeoutMs: number): Promise<Map<string, number>> {
  return waitFor(
    `all ${NAMES.length} machines serving (seen on replica ${cluster.replica(on).name}), held by running replicas`,
    async () => {
      // Each probe that fails says why (waitFor names the last one when time runs out).
      for (const name of NAMES) {
        const v = await vm(on, name);
        if (!serving(v))
          throw new Error(
            `${name}: agent ${v.agent.status}, notebook ${v.notebook.state}, ${v.health.status} (${v.health.reasons.join("; ")})`,
          );
      }
      const holders = await cluster.holders();
      const held = new Map<string, number>();
      for (const name of NAMES) {
        const holder = holders.get(name);
        if (holder === undefined || holder === null || !cluster.running.includes(holder))
          throw new Error(`${name}'s agent is held by ${holder ?? "no replica"} (vm_status.replica_id)`);
        held.set(name, holder);
      }
      return held;
    },
    timeoutMs,
  );
}

/**
 * For a failed operation: how each failed target's VM looks now (agent, notebook, health and its
 * reasons), who holds its agent, and what the replicas logged about it.
 */
async function diagnose(on: number, op: OperationView): Promise<string> {
  const holders = await cluster.holders().catch((error) => new Map([["?", String(error)]]));
  const lines: string[] = [`holders: ${JSON.stringify([...holders])}`];
  for (const target of op.targets.items.filter((t) => t.state === "failed")) {
    const v = await vm(on, target.vmName).catch((error) => String(error));
    const seen =
      typeof v === "string"
        ? v
        : JSON.stringify({ agent: v.agent, notebook: v.notebook, health: v.health }).slice(0, 3000);
    lines.push(`${target.vmName} now: ${seen}`);
    for (const source of ["agent", "notebook"]) {
      const tail = await fetch(
        `${cluster.replica(on).url}/v1/vms/${target.vmName}/logs?lines=30&source=${source}&format=text`,
        { headers: { authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(15_000) },
      )
        .then((response) => response.text())
        .catch((error) => String(error));
      lines.push(`--- ${target.vmName}'s ${source} log ---`, ...tail.split("\n").map((l) => l.slice(0, 400)));
    }
    const logged = cluster
      .outputs()
      .split("\n")
      .filter((line) => line.includes(target.vmName) || line.startsWith("--- replica"));
    lines.push(...logged.slice(-40).map((line) => line.slice(0, 400)));
  }
  return lines.join("\n");
}

/** A machine whose agent replica `index` holds. */
function heldBy(holders: Map<string, number>, index: number): string {
  const name = [...holders].find(([, holder]) => holder === index)?.[0];
  if (!name) throw new Error(`replica ${index} holds no agent: ${JSON.stringify([...holders])}`);
  return name;
}

beforeAll(async () => {
  postgres = await startPostgres();
  cluster = await Cluster.start({
    replicas: 3,
    databaseUrl: await postgres.createDatabase(),
    token: TOKEN,
    env: { NBFLEET_REPORT_INTERVAL_SEC: "2", NBFLEET_PING_INTERVAL_SEC: "2" },
  });
}, 240_000);

afterAll(async () => {
  if (cluster) {
    // Whatever the replicas logged at error level, for a failure's diagnosis.
    const errors = cluster
      .outputs()
      .split("\n")
      .filter((line) => /"level":(50|60)|^--- replica/.test(line));
    console.log(errors.join("\n").slice(-20_000));
    const on = cluster.running[0];
    // Sandboxes outlive controllers: delete them (their agents and notebooks with them).
    if (on !== undefined)
      await Promise.all(
        NAMES.map((name) =>
          cluster
            .api(on)("DELETE", `/v1/vms/${name}`)
            .catch(() => {}),
        ),
      );
    await cluster.stop();
  }
  await postgres?.remove();
}, 240_000);

describe("three replicas, one PostgreSQL, six real machines", () => {
  let holders: Map<string, number>;

  it("creates a machine through A and sees it healthy through B; agents spread over A, B and C", async () => {
    const created = await Promise.all(
      NAMES.map((name, i) => cluster.api(i % 3)("POST", "/v1/vms", { name, labels: { ring: "replicas" } })),
    );
    expect(created.map((c) => c.status)).toEqual(NAMES.map(() => 201));
    // rep-0 was created through A; B reports it serving.
    await waitFor("rep-0 serving, seen on B", async () => serving(await vm(B, "rep-0")), 240_000);
    holders = await allServing(B, 240_000);
    const counts = [A, B, C].map((r) => [...holders.values()].filter((h) => h === r).length);
    console.log(`agents held per replica: ${counts.join(", ")}`);
    expect(
      counts.every((n) => n >= 1),
      `every replica holds an agent: ${counts}`,
    ).toBe(true);
  }, 400_000);

  it("restarts through A a notebook whose agent C holds", async () => {
    const name = heldBy(holders, C);
    const before = await vm(B, name);
    const queued = await cluster.api(A)<CommandView>("POST", `/v1/vms/${name}/notebook/restart`);
    expect(queued.status).toBe(202);
    const done = await finished(A, queued.body.id);
    expect(done.body.state, JSON.stringify(done)).toBe("succeeded");
    const after = await waitFor("the new pid reported", async () => {
      const v = await vm(A, name);
      return v.notebook.pid !== before.notebook.pid && serving(v) && v;
    });
    expect(after.notebook.restarts).toBe(before.notebook.restarts + 1);
  }, 180_000);

  it("opens a terminal through A on a machine whose agent B holds: typed input, the shell's output", async () => {
    const name = heldBy(holders, B);
    const waiters = new Waiters();
    let output = "";
    const connection = await TerminalConnection.open(
      { baseUrl: cluster.replica(A).url, token: TOKEN, vm: name, cols: 100, rows: 30 },
      {
        output: (_channel, data) => {
          output += data.toString();
          waiters.notify();
        },
        closed: () => waiters.notify(),
      },
    );
    // The shell computes the answer: the echo of the typed line alone cannot match.
    connection.input('echo "answer=$((6*7)) host=$(hostname)"\r');
    await waiters.until(() => /answer=42 host=\S+/.test(output), "the shell's answer", 60_000);
    connection.input("exit\r");
    await waiters.until(() => !connection.open, "the session to end", 30_000);
  }, 120_000);

  it("follows through C the log of a machine whose agent A holds, across a notebook restart", async () => {
    const name = heldBy(holders, A);
    const waiters = new Waiters();
    const lines: string[] = [];
    const abort = new AbortController();
    const response = await fetch(
      `${cluster.replica(C).url}/v1/vms/${name}/logs?lines=0&follow=1&format=ndjson`,
      { headers: { authorization: `Bearer ${TOKEN}` }, signal: abort.signal },
    );
    expect(response.status).toBe(200);
    const reading = (async () => {
      let buffer = "";
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        buffer += Buffer.from(chunk).toString("utf8");
        for (let at = buffer.indexOf("\n"); at >= 0; at = buffer.indexOf("\n")) {
          const record = JSON.parse(buffer.slice(0, at)) as { line?: string };
          if (record.line !== undefined) lines.push(record.line);
          buffer = buffer.slice(at + 1);
        }
        waiters.notify();
      }
    })().catch(() => undefined);
    const queued = await cluster.api(B)<CommandView>("POST", `/v1/vms/${name}/notebook/restart`);
    const done = await finished(B, queued.body.id);
    expect(done.body.state, JSON.stringify(done)).toBe("succeeded");
    await waiters.until(
      () => lines.some((l) => /Serving notebooks from local directory/.test(l)),
      "the restarted server's start-up lines on the follow",
      90_000,
    );
    abort.abort();
    await reading;
  }, 180_000);

  it("streams on A's GET /v1/events an event caused on C", async () => {
    const reader = new SseReader(`${cluster.replica(A).url}/v1/events?kind=token.`, { token: TOKEN });
    expect(await reader.ready).toBe(200);
    const name = `made-on-c-${Date.now()}`;
    const made = await cluster.api(C)("POST", "/v1/tokens", { name, role: "viewer" });
    expect(made.status).toBe(201);
    await waitFor(
      "the token.created event on A",
      async () => reader.events.some((e) => e.data.includes(name)),
      30_000,
    );
    reader.close();
  }, 60_000);

  it("kill -9 of the replica holding most agents mid rolling restart: re-homed, finished elsewhere, each notebook restarted once", async () => {
    const before = new Map<string, VmView>();
    for (const name of NAMES) before.set(name, await vm(A, name));
    holders = await allServing(A, 120_000);
    const runner = await operationsRunner();
    const counts = [A, B, C].map((r) => [...holders.values()].filter((h) => h === r).length);
    const most = Math.max(...counts);
    // Among the busiest replicas, the one running operations if it is one: both takeovers at once.
    const victim = runner !== null && counts[runner] === most ? runner : counts.indexOf(most);
    const survivor = [A, B, C].find((r) => r !== victim)!;
    console.log(
      `agents per replica ${counts.join(", ")}; operations run on ${runner ?? "?"}; killing ${victim}`,
    );

    const created = await cluster.api(survivor)<{ operation: { id: string } }>("POST", "/v1/operations", {
      action: "notebook.restart",
      selector: { labels: "ring=replicas" },
      maxConcurrency: 2,
      rolling: { enabled: true, healthTimeoutSec: 180 },
    });
    expect(created.status).toBe(201);
    const id = created.body.operation.id;
    const operation = async (on: number) =>
      (await cluster.api(on)<OperationView>("GET", `/v1/operations/${id}`)).body;
    // In the middle: some targets done, some not.
    const midway = await waitFor(
      "the operation half-way",
      async () => {
        const op = await operation(survivor);
        const finished = op.targets.items.filter((t) => t.state === "succeeded").length;
        return (!live(op.state) || finished >= 1) && { op, finished };
      },
      240_000,
    );
    if (!live(midway.op.state))
      expect.fail(
        `the operation was ${midway.op.state} before the kill: ${JSON.stringify(midway.op.targets.items)}\n${await diagnose(survivor, midway.op)}`,
      );
    expect(midway.finished).toBeLessThan(NAMES.length);
    await cluster.kill(victim, "SIGKILL");

    const done = await waitFor(
      "the operation to end on the surviving replicas",
      async () => {
        const op = await operation(survivor);
        return !live(op.state) && op;
      },
      300_000,
    );
    if (done.state !== "succeeded") {
      // CI shows only the end of a run: the message carries what a diagnosis needs.
      expect.fail(`${done.state}: ${JSON.stringify(done.targets.items)}\n${await diagnose(survivor, done)}`);
    }
    expect(done.targets.items.map((t) => [t.vmName, t.state]).sort()).toEqual(
      NAMES.map((n) => [n, "succeeded"]),
    );
    // Every agent on a live replica, every notebook restarted exactly once.
    const rehomed = await allServing(survivor, 120_000);
    expect([...rehomed.values()].includes(victim)).toBe(false);
    for (const name of NAMES) {
      const after = await vm(survivor, name);
      expect(after.notebook.pid, name).not.toBe(before.get(name)!.notebook.pid);
      expect(after.notebook.restarts, name).toBe(before.get(name)!.notebook.restarts + 1);
    }
    // No command lost or doubled: one notebook.restart per machine for this operation, each succeeded.
    const commands = await cluster.query<{ vm_name: string; state: string }>(
      "select vm_name, state from commands where id = any($1::text[])",
      [done.targets.items.map((t) => t.commandId)],
    );
    expect(commands.map((c) => [c.vm_name, c.state]).sort()).toEqual(NAMES.map((n) => [n, "succeeded"]));
    // The victim comes back for what follows.
    await cluster.start(victim);
  }, 600_000);

  it("PostgreSQL stopped for 20 s: every replica stays up, says so on /healthz, and carries on", async () => {
    // (A replica an earlier failure left down comes back first: this part is about the outage.)
    for (const replica of cluster.replicas) if (!replica.process) await cluster.start(replica.index);
    const token = await cluster.api(A)<{ id: string }>("POST", "/v1/tokens", {
      name: "before-the-outage",
      role: "viewer",
    });
    expect(token.status).toBe(201);
    const restarted = await cluster.api(B)<CommandView>("POST", "/v1/vms/rep-1/notebook/restart");
    const restartedDone = await finished(B, restarted.body.id);
    expect(restartedDone.body.state, JSON.stringify(restartedDone)).toBe("succeeded");

    // A clean stop (as for a restart or failover): the test server runs with synchronous_commit
    // off, so an immediate stop there would lose its own last commits, not the controller's.
    await postgres.stop("fast");
    const outageStarted = Date.now();
    for (const replica of cluster.replicas) {
      await waitFor(
        `replica ${replica.name}'s /healthz to report the database unreachable`,
        async () => {
          const body = (await (await fetch(`${replica.url}/healthz`)).json()) as {
            database?: { status?: string };
          };
          return body.database?.status === "unreachable";
        },
        15_000,
      );
    }
    const left = 20_000 - (Date.now() - outageStarted);
    if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
    for (const replica of cluster.replicas)
      expect(replica.process!.process.exitCode, `replica ${replica.name} died`).toBeNull();
    await postgres.start();

    for (const replica of cluster.replicas) {
      await waitFor(
        `replica ${replica.name}'s /healthz to report the database back`,
        async () => {
          const body = (await (await fetch(`${replica.url}/healthz`)).json()) as {
            database?: { status?: string };
          };
          return body.database?.status === "ok";
        },
        60_000,
      );
    }
    // What was accepted before is there, on every replica; and the cluster works again.
    for (const index of [A, B, C]) {
      const tokens = await cluster.api(index)<{ items: Array<{ id: string }> }>("GET", "/v1/tokens");
      expect(tokens.body.items.some((t) => t.id === token.body.id)).toBe(true);
      const command = await cluster.api(index)<CommandView>("GET", `/v1/commands/${restarted.body.id}`);
      expect(command.body.state).toBe("succeeded");
    }
    await allServing(C, 120_000);
    const again = await cluster.api(C)<CommandView>("POST", "/v1/vms/rep-2/notebook/restart");
    const againDone = await finished(A, again.body.id);
    expect(againDone.body.state, JSON.stringify(againDone)).toBe("succeeded");
  }, 400_000);
});

/** The replica holding the operations runner's lease, if the database says. */
async function operationsRunner(): Promise<number | null> {
  const rows = await cluster.query<{ url: string }>(
    `select r.url from leases l join replicas r on r.id = l.holder
      where l.name like '%operation%' order by l.expires_at desc limit 1`,
  );
  const url = rows[0]?.url.replace(/\/+$/, "");
  const replica = cluster.replicas.find((r) => r.url === url);
  return replica ? replica.index : null;
}
