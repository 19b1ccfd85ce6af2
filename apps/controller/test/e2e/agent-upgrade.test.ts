/**
 * Agent upgrades across a real fleet: `nbfleet server` (its own process) with the local
 * provider, three sandboxes booted by the real bootstrap on the controller's own agent (version
 * A), Debian's Jupyter. Versions are published to the controller and rolled out with the
 * `agent.upgrade` operation; each guest downloads, verifies and switches by itself.
 *
 * The tests run in order on one fleet, each starting from where the one before left it:
 *   1. B (the checkout built as another version) rolled out with a canary: every agent on B,
 *      every notebook server the same process, an open kernel keeps its variables; drift shown
 *      before and after; the same rollout again skips every machine.
 *   2. C, whose agent exits at start (published and rolled out with the CLI): the canary's
 *      launcher rolls back to B by itself, the operation stops with that target failed and the
 *      others never asked.
 *   3. G, whose agent never connects: rolled back by the launcher at the command's deadline.
 *   4. Artifacts tampered with on the controller (the served bytes, the signature): refused by
 *      the agent before anything is switched.
 *   5. E, then F, rolled out while the controller is SIGKILLed and restarted (once while the
 *      agents restart into the new version, once while they download it): the operation
 *      resumes and every agent is upgraded (restarted) exactly once.
 */
import { readFileSync, readdirSync } from "node:fs";
import { readFile, readdir, readlink, realpath, stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { KernelChannel, apiUrl, requestApi } from "@nbfleet/agent";
import {
  type AgentEvent,
  type CommandView,
  type FleetEventView,
  type VmView,
  agentArtifactFilePath,
} from "@nbfleet/shared";
import {
  type BuiltVersion,
  buildAgentVersion,
  handMadeArtifact,
  publishArtifact,
} from "@nbfleet/testkit/agent-versions";
import { runCli } from "@nbfleet/testkit/cli";
import {
  type ControllerProcess,
  api,
  startControllerProcess,
  stopControllerProcess,
} from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { SseReader } from "@nbfleet/testkit/sse-reader";
import { waitFor } from "@nbfleet/testkit/wait";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const TOKEN = "nbf_e2e-agent-upgrade-admin-token-14";
const NAMES = ["upg-1", "upg-2", "upg-3"];
const B = "0.1.1-e2e.b";
const C = "0.1.2-e2e.c";
const D_FILE = "0.1.3-e2e.file";
const D_SIGNATURE = "0.1.3-e2e.sig";
const E = "0.1.4-e2e.e";
const F = "0.1.5-e2e.f";
const G = "0.1.2-e2e.hang";
/** The hung version's timeoutSec (the protocol's minimum). */
const DEADLINE_SEC = 10;
/**
 * What the new agent has to connect and report healthy within, in these tests: the operation's
 * `params.timeoutSec`, carried by the command (the guest's NBFLEET_UPGRADE_TIMEOUT_SEC is only
 * its default when a command carries none).
 */
const UPGRADE_TIMEOUT_SEC = 40;
const SOAK_SEC = 3;

let controller: ControllerProcess;
let port: number;
let sandboxes: string;
let events: FleetEvents;
let A: string;
let built: { B: BuiltVersion; E: BuiltVersion; F: BuiltVersion };

interface TargetView {
  seq: number;
  vmName: string;
  state: string;
  commandId: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  error: { code: string; message: string } | null;
}
interface OperationDetail {
  id: string;
  state: string;
  reason: string | null;
  counts: Record<string, number>;
  targets: { items: TargetView[] };
}

const call = <T>(method: string, route: string, body?: unknown) => api(controller)<T>(method, route, body);
const vm = async (name: string) => (await call<VmView>("GET", `/v1/vms/${name}`)).body;
const serving = (v: VmView) =>
  v.agent.status === "connected" &&
  v.notebook.state === "running" &&
  (v.health.status === "healthy" || v.health.status === "degraded");
const versionOf = (v: VmView) => (v.agent as { version?: string | null }).version ?? null;

/** The stored and live fleet events, read from the start and read on across controller restarts. */
class FleetEvents {
  private reader: SseReader;
  private readonly seen: FleetEventView[] = [];
  private readonly ids = new Set<string>();

  constructor(private target: ControllerProcess) {
    this.reader = this.open("evt_0");
  }

  /** After a controller restart: on from the last event read. */
  reopen(target: ControllerProcess): void {
    this.collect();
    this.reader.close();
    this.target = target;
    this.reader = this.open(this.seen.at(-1)?.id ?? "evt_0");
  }

  all(filter: { vm?: string; kind?: string } = {}): FleetEventView[] {
    this.collect();
    return this.seen.filter(
      (e) =>
        (filter.vm === undefined || e.vmName === filter.vm) &&
        (filter.kind === undefined || e.kind === filter.kind),
    );
  }

  close(): void {
    this.reader.close();
  }

  private open(after: string): SseReader {
    return new SseReader(`${this.target.url}/v1/events`, { token: TOKEN, lastEventId: after });
  }

  private collect(): void {
    for (const { id, data } of this.reader.events) {
      if (this.ids.has(id)) continue;
      this.ids.add(id);
      this.seen.push(JSON.parse(data) as FleetEventView);
    }
  }
}

function install(name: string) {
  const dir = path.join(sandboxes, name, "install");
  return {
    dir,
    current: path.join(dir, "current"),
    previous: path.join(dir, "previous"),
    versions: path.join(dir, "versions"),
    upgradeRecord: path.join(dir, "upgrade.json"),
  };
}

/** Where `install/<link>` points, as the version directory's name (null when there is no link). */
async function linkedVersion(name: string, link: "current" | "previous"): Promise<string | null> {
  const target = await readlink(install(name)[link]).catch(() => null);
  return target === null ? null : path.basename(target);
}

/** The guest's agent processes: `node …/install/…/nbfleet-agent.mjs …` under this sandbox. */
function agentProcesses(name: string): number[] {
  const dir = `${install(name).dir}/`;
  const found: number[] = [];
  for (const entry of readdirSync("/proc").filter((e) => /^\d+$/.test(e))) {
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, "utf8").split("\0");
      if (argv.some((a) => a.startsWith(dir) && a.endsWith("nbfleet-agent.mjs"))) found.push(Number(entry));
    } catch {
      // gone
    }
  }
  return found;
}

function agentPid(name: string): number | null {
  const [only, ...others] = agentProcesses(name);
  if (others.length > 0) throw new Error(`${name} runs ${others.length + 1} agents: ${[only, ...others]}`);
  return only ?? null;
}

/** A process as pid + the kernel's start time of that pid: the same pair is the same process. */
function processIdentity(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return `${pid}@${stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]}`;
}

/** The guest's own record of its events (state/events.jsonl), newer than `since`. */
async function guestEvents(name: string, since: number): Promise<AgentEvent[]> {
  const text = await readFile(path.join(sandboxes, name, "agent", "state", "events.jsonl"), "utf8");
  return text
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line) as AgentEvent)
    .filter((e) => Date.parse(e.at) >= since);
}

/** Every machine reports `version` (outdated or not), the list filters by it, /metrics counts it. */
async function expectDrift(version: string, outdated: boolean): Promise<void> {
  for (const name of NAMES) {
    const agent = (await vm(name)).agent as { version?: string | null; outdated?: boolean | null };
    expect({ name, version: agent.version, outdated: agent.outdated }).toEqual({ name, version, outdated });
  }
  const listed = await call<{ items: VmView[] }>(
    "GET",
    `/v1/vms?agentVersion=${encodeURIComponent(version)}`,
  );
  expect(listed.body.items.map((v) => v.name).sort()).toEqual(NAMES);
  await waitFor(`/metrics counting ${NAMES.length} agents on ${version}`, async () => {
    const metrics = await fetch(`${controller.url}/metrics`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    return (await metrics.text()).includes(`nbfleet_agents{version="${version}"} ${NAMES.length}`);
  });
}

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

/**
 * The new agent confirmed `version` on the guest: `upgrade.json` gone and its own event log has
 * `agent.upgrade.completed`. (The operation counts the target done once the agent reports the
 * version and serves; the confirmation follows on the guest a moment later.)
 */
async function confirmedOnGuest(name: string, version: string, since: number): Promise<void> {
  await waitFor(
    `${name} to confirm ${version}`,
    async () =>
      !(await exists(install(name).upgradeRecord)) &&
      (await guestEvents(name, since)).some(
        (e) => e.kind === "agent.upgrade.completed" && e.data?.to === version,
      ),
    15_000,
  );
}

async function startUpgrade(body: Record<string, unknown>): Promise<string> {
  const created = await call<{ operation: { id: string } }>("POST", "/v1/operations", {
    action: "agent.upgrade",
    ...body,
    params: { timeoutSec: UPGRADE_TIMEOUT_SEC, ...(body.params as object) },
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  return created.body.operation.id;
}

async function finished(id: string, timeoutMs = 240_000): Promise<OperationDetail> {
  return waitFor(
    `operation ${id} to end`,
    async () => {
      const op = (await call<OperationDetail>("GET", `/v1/operations/${id}`)).body;
      return op.state !== "running" && op.state !== "pending" && op;
    },
    timeoutMs,
  );
}

async function upgradeCommands(name: string, operationId: string): Promise<CommandView[]> {
  const { body } = await call<{ items: CommandView[] }>("GET", `/v1/vms/${name}/commands?limit=500`);
  return body.items.filter((c) => c.name === "agent.upgrade" && c.operationId === operationId);
}

/** A kernel on `name`'s notebook server, spoken to directly with the agent's own token. */
async function openKernel(name: string) {
  const view = await vm(name);
  const profile = path.join(sandboxes, name, "agent", "profile", "nbserver");
  const target = {
    host: "127.0.0.1",
    port: Number(new URL(view.notebook.url!).port),
    baseUrl: "/",
    certFile: path.join(profile, "cert.pem"),
  };
  const token = (await readFile(path.join(profile, "agent-token"), "utf8")).trim();
  const created = await requestApi(target, {
    method: "POST",
    path: "api/kernels",
    token,
    body: {},
    timeoutMs: 30_000,
  });
  expect(created.status).toBe(201);
  const id = (created.body as { id: string }).id;
  const channel = await KernelChannel.open(
    apiUrl(target, `api/kernels/${id}/channels`, "wss"),
    token,
    30_000,
    target,
  );
  return {
    channel,
    async run(code: string) {
      const ran = await channel.execute(code, 60_000);
      expect(ran.error, ran.stderr).toBeNull();
      return ran.stdout;
    },
    async close() {
      channel.close();
      await requestApi(target, { method: "DELETE", path: `api/kernels/${id}`, token, timeoutMs: 10_000 });
    },
  };
}

beforeAll(async () => {
  const dataDir = makeDataDir();
  port = await freePort();
  const builds = Promise.all([buildAgentVersion(B), buildAgentVersion(E), buildAgentVersion(F)]);
  controller = await startControllerProcess(dataDir, port, TOKEN, {
    NBFLEET_REPORT_INTERVAL_SEC: "2",
    NBFLEET_METRICS_REFRESH_SEC: "0.5",
  });
  sandboxes = await realpath(path.join(dataDir, "sandboxes")).catch(() => path.join(dataDir, "sandboxes"));
  events = new FleetEvents(controller);
  for (const name of NAMES) {
    const created = await call("POST", "/v1/vms", { name });
    expect(created.status).toBe(201);
  }
  await Promise.all(
    NAMES.map((name) => waitFor(`${name} serving`, async () => serving(await vm(name)), 240_000)),
  );
  sandboxes = await realpath(path.join(dataDir, "sandboxes"));
  const [b, e, f] = await builds;
  built = { B: b, E: e, F: f };
  A = versionOf(await vm(NAMES[0]!))!;
  expect(A).toMatch(/^\d+\.\d+\.\d+/);
}, 400_000);

afterAll(async () => {
  events?.close();
  for (const name of NAMES) await call("DELETE", `/v1/vms/${name}`).catch(() => undefined);
  if (controller) await stopControllerProcess(controller);
});

describe("agent upgrades on real machines", () => {
  it("rolls B out canary first: every agent on B, every notebook the same process, a kernel keeps x", async () => {
    for (const name of NAMES) {
      expect(versionOf(await vm(name))).toBe(A);
      expect(await linkedVersion(name, "current")).not.toBeNull();
    }
    const published = await publishArtifact(controller, built.B.file);
    expect(published).toMatchObject({ version: B, sha256: built.B.sha256, bytes: built.B.bytes });
    const listed = (await call<{ items: Array<{ version: string }> }>("GET", "/v1/agent/artifacts")).body;
    expect(listed.items.map((i) => i.version)).toEqual(expect.arrayContaining([A, B]));
    // Drift in view: with B published, the agents on A are outdated.
    await expectDrift(A, true);

    const kernel = await openKernel(NAMES[0]!);
    await kernel.run("x = 42");
    const before = new Map<string, { notebook: string; startedAt: string | null; agent: number }>();
    for (const name of NAMES) {
      const view = await vm(name);
      before.set(name, {
        notebook: processIdentity(view.notebook.pid!),
        startedAt: view.notebook.startedAt,
        agent: agentPid(name)!,
      });
    }

    const since = Date.now();
    const id = await startUpgrade({
      selector: { names: NAMES },
      params: { version: B },
      canary: 1,
      canarySoakSec: SOAK_SEC,
      maxConcurrency: 2,
    });
    const op = await finished(id);
    expect(op.state, JSON.stringify(op)).toBe("succeeded");
    expect(op.counts).toMatchObject({ succeeded: 3, failed: 0 });

    // The canary went alone, and soaked: it finished SOAK_SEC after its new agent confirmed (on
    // the guest's clock, this machine's), and the others started only after that.
    const [canary, ...rest] = [...op.targets.items].sort((x, y) => x.seq - y.seq);
    const confirmed = (await guestEvents(canary!.vmName, since)).find(
      (e) => e.kind === "agent.upgrade.completed",
    );
    expect(confirmed?.data).toMatchObject({ to: B });
    expect(Date.parse(canary!.finishedAt!) - Date.parse(confirmed!.at)).toBeGreaterThanOrEqual(
      SOAK_SEC * 1000 - 500,
    );
    for (const other of rest) {
      expect(Date.parse(other.startedAt!)).toBeGreaterThanOrEqual(Date.parse(canary!.finishedAt!));
    }

    for (const name of NAMES) {
      const view = await vm(name);
      expect(serving(view), JSON.stringify(view)).toBe(true);
      expect(versionOf(view)).toBe(B);
      // Not a restart that happened to reuse the pid: the same process since before.
      expect(processIdentity(view.notebook.pid!)).toBe(before.get(name)!.notebook);
      expect(view.notebook.startedAt).toBe(before.get(name)!.startedAt);
      expect(agentPid(name)).not.toBe(before.get(name)!.agent);
      expect(await linkedVersion(name, "current")).toBe(B);
      expect(await linkedVersion(name, "previous")).not.toBe(B);
      await confirmedOnGuest(name, B, since);
      // The new agent re-adopted the server; nothing started one.
      const kinds = (await guestEvents(name, since)).map((e) => e.kind);
      expect(kinds.filter((k) => k === "notebook.adopted")).toHaveLength(1);
      expect(kinds).not.toContain("notebook.started");
      await waitFor(`${name}'s agent.upgrade.completed event`, async () =>
        events.all({ vm: name, kind: "agent.upgrade.completed" }).some((e) => e.data?.to === B),
      );
    }

    await expectDrift(B, false);

    // The kernel's channel (straight to the notebook server) stayed open, and x is still there.
    expect(await kernel.run("print(x)")).toBe("42\n");
    await kernel.close();

    // The same rollout again: every agent is on B already, so every target is skipped, unsent.
    const again = await finished(
      await startUpgrade({
        selector: { names: NAMES },
        params: { version: B },
        canary: 1,
        canarySoakSec: SOAK_SEC,
      }),
    );
    expect(again.state, JSON.stringify(again)).toBe("succeeded");
    expect(again.targets.items.map((t) => t.state)).toEqual(NAMES.map(() => "skipped"));
    for (const name of NAMES) expect(await upgradeCommands(name, again.id)).toEqual([]);
  });

  it("rolls a canary on a broken version back to B by itself and stops the operation", async () => {
    const broken = await handMadeArtifact(
      C,
      `process.stderr.write("nbfleet-agent ${C}: broken on purpose\\n");\nprocess.exit(1);`,
    );
    // Published and rolled out with the CLI, as an operator would.
    const cli = { url: controller.url, adminToken: TOKEN };
    const publish = await runCli(cli, "--json", "agent", "publish", broken);
    expect(publish.code, publish.stderr).toBe(0);
    expect(JSON.parse(publish.stdout)).toMatchObject({ version: C });
    const before = new Map<string, string>();
    for (const name of NAMES) before.set(name, processIdentity((await vm(name)).notebook.pid!));

    const started = Date.now();
    const rollout = await runCli(
      cli,
      "--json",
      "op",
      "run",
      "agent.upgrade",
      "--version",
      C,
      ...NAMES.flatMap((name) => ["--name", name]),
      "--canary",
      "1",
      "--canary-soak-sec",
      "2",
      "--max-concurrency",
      "2",
      "--upgrade-timeout-sec",
      String(UPGRADE_TIMEOUT_SEC),
    );
    // The CLI waits for the end and says it failed with its exit status.
    expect(rollout.code, rollout.stderr).toBe(1);
    const id = (JSON.parse(rollout.stdout) as { operation: { id: string } }).operation.id;
    const op = await finished(id);
    const elapsedSec = (Date.now() - started) / 1000;
    expect(op.state, JSON.stringify(op)).toBe("failed");
    const [canary, ...rest] = [...op.targets.items].sort((x, y) => x.seq - y.seq);
    expect(canary!.state).toBe("failed");
    expect(canary!.error?.code).toBe("NBF_TARGET_UPGRADE_ROLLED_BACK");
    expect(elapsedSec).toBeLessThan(UPGRADE_TIMEOUT_SEC + 20);
    for (const other of rest) {
      expect(["pending", "cancelled", "skipped"]).toContain(other.state);
      expect(other.commandId).toBeNull();
      expect(await upgradeCommands(other.vmName, id)).toEqual([]);
    }

    const canaryName = canary!.vmName;
    const rolledBack = events.all({ vm: canaryName, kind: "agent.upgrade.rolled_back" });
    expect(rolledBack).toHaveLength(1);
    expect(rolledBack[0]!.level).toBe("error");
    expect(rolledBack[0]!.data).toMatchObject({ from: B, to: C, reason: expect.any(String) });
    expect(rolledBack[0]!.message).toContain(B);
    expect(rolledBack[0]!.message).toContain(C);
    expect(String(rolledBack[0]!.data?.reason)).toMatch(/exit|crash/i);

    for (const name of NAMES) {
      const view = await waitFor(`${name} serving on B`, async () => {
        const v = await vm(name);
        return serving(v) && versionOf(v) === B && v;
      });
      expect(processIdentity(view.notebook.pid!)).toBe(before.get(name));
      expect(await linkedVersion(name, "current")).toBe(B);
      await waitFor(
        `${name} without upgrade.json`,
        async () => !(await exists(install(name).upgradeRecord)),
        15_000,
      );
    }
  });

  it("rolls back at the deadline a version whose agent starts but never connects", async () => {
    // Its agent lives but never dials: only the launcher's deadline (timeoutSec) can end it.
    await publishArtifact(controller, await handMadeArtifact(G, "setInterval(() => {}, 60_000);"));
    const name = NAMES[1]!;
    const notebook = processIdentity((await vm(name)).notebook.pid!);
    const started = Date.now();
    const id = await startUpgrade({
      selector: { names: [name] },
      params: { version: G, timeoutSec: DEADLINE_SEC },
      maxConcurrency: 1,
    });
    const op = await finished(id, 120_000);
    expect(op.state, JSON.stringify(op)).toBe("failed");
    expect(op.targets.items[0]!.error?.code).toBe("NBF_TARGET_UPGRADE_ROLLED_BACK");
    const event = await waitFor(`${name}'s rollback event`, async () =>
      events.all({ vm: name, kind: "agent.upgrade.rolled_back" }).find((e) => e.data?.to === G),
    );
    expect(event.data).toMatchObject({ from: B, to: G });
    expect(String(event.data?.reason)).toMatch(/deadline|timed? ?out|within/i);
    // Not before the deadline, and not long after it.
    const rolledBackAt = Date.parse(event.at);
    expect(rolledBackAt - started).toBeGreaterThanOrEqual(DEADLINE_SEC * 1000);
    expect(rolledBackAt - started).toBeLessThan((DEADLINE_SEC + 15) * 1000);
    const view = await waitFor(`${name} serving on B`, async () => {
      const v = await vm(name);
      return serving(v) && versionOf(v) === B && v;
    });
    expect(processIdentity(view.notebook.pid!)).toBe(notebook);
    expect(await linkedVersion(name, "current")).toBe(B);
    // The hung agent was ended, not left beside the previous one.
    expect(agentPid(name)).not.toBeNull();
    expect(agentProcesses(name)).toHaveLength(1);
  });

  it("refuses an artifact whose file or signature was tampered with, before switching anything", async () => {
    // One published version has the bytes this controller serves changed, the other a real
    // release-key signature made for another version and other bytes in its record.
    const fileCase = await publishArtifact(controller, await handMadeArtifact(D_FILE, "process.exit(1);"));
    const sigCase = await publishArtifact(
      controller,
      await handMadeArtifact(D_SIGNATURE, "process.exit(1);"),
    );
    expect(sigCase.signature).not.toBe(fileCase.signature);

    // The controller serves from its local copy (checked against the record's sha256 when it is
    // first written, then trusted): fetched once, it is then changed on disk, size kept.
    const first = await fetch(`${controller.url}${agentArtifactFilePath(D_FILE)}`);
    expect(first.status).toBe(200);
    await first.arrayBuffer();
    const copy = path.join(controller.dataDir, "artifacts", `${fileCase.sha256}.tar.gz`);
    const bytes = await readFile(copy);
    const middle = Math.floor(bytes.length / 2);
    bytes[middle] = bytes[middle]! ^ 0xff;
    await writeFile(copy, bytes);
    // The record is a row of the controller's database.
    const db = new Database(path.join(controller.dataDir, "nbfleet.sqlite"));
    try {
      db.pragma("busy_timeout = 10000");
      const changed = db
        .prepare("UPDATE agent_artifacts SET signature = ? WHERE version = ?")
        .run(fileCase.signature, D_SIGNATURE);
      expect(changed.changes).toBe(1);
    } finally {
      db.close();
    }
    await waitFor("the controller to list the changed record", async () => {
      const { body } = await call<{ items: Array<{ version: string; signature: string }> }>(
        "GET",
        "/v1/agent/artifacts",
      );
      return body.items.find((i) => i.version === D_SIGNATURE)?.signature === fileCase.signature;
    });

    for (const [name, version, check] of [
      [NAMES[1]!, D_FILE, /sha-?256/i],
      [NAMES[2]!, D_SIGNATURE, /signature/i],
    ] as const) {
      const agentBefore = agentPid(name);
      const id = await startUpgrade({ selector: { names: [name] }, params: { version }, maxConcurrency: 1 });
      const op = await finished(id, 120_000);
      expect(op.state).toBe("failed");
      const target = op.targets.items[0]!;
      expect(target.error?.code, JSON.stringify(target)).toBe("NBF_ARTIFACT_REFUSED");
      expect(target.error?.message).toMatch(check);
      // Nothing switched, nothing unpacked, the agent never restarted.
      expect(agentPid(name)).toBe(agentBefore);
      expect(await linkedVersion(name, "current")).toBe(B);
      const unpacked = await readdir(install(name).versions);
      expect(unpacked.filter((d) => d.startsWith(version))).toEqual([]);
      expect(await stat(install(name).upgradeRecord).catch(() => null)).toBeNull();
      const view = await vm(name);
      expect(serving(view)).toBe(true);
      expect(versionOf(view)).toBe(B);
    }
  });

  it("resumes after a SIGKILL while the agents restart into the new version, upgrading none twice", async () => {
    // Killed once a machine of the wave after the canary has switched (`upgrade.json` written,
    // its agent exiting for the new one), before the new agent confirmed.
    await upgradeAcrossKill(built.E, async (op) => {
      const wave = op.targets.items.filter((t) => t.seq > 0 && t.state === "running");
      for (const t of wave) if (await stat(install(t.vmName).upgradeRecord).catch(() => null)) return true;
      return false;
    });
  });

  it("resumes after a SIGKILL while the agents download the new version, upgrading none twice", async () => {
    // Killed as soon as the wave after the canary has its commands: the agents are fetching the
    // artifact from the controller that dies under them (or, on a quick machine, just did).
    await upgradeAcrossKill(built.F, async (op) =>
      op.targets.items.some((t) => t.seq > 0 && t.state === "running" && t.commandId !== null),
    );
  });
});

/**
 * Upgrades the fleet to `artifact` (canary 1, then the other two at once), SIGKILLs the
 * controller the moment `killWhen` holds, starts it again on the same data dir and checks the
 * operation ends succeeded with every machine upgraded exactly once: one command each, and on
 * each guest's own record one agent start (re-adopting the notebook) and one confirmation.
 */
async function upgradeAcrossKill(
  artifact: BuiltVersion,
  killWhen: (op: OperationDetail) => Promise<boolean>,
): Promise<void> {
  await publishArtifact(controller, artifact.file);
  const before = new Map<string, string>();
  for (const name of NAMES) before.set(name, processIdentity((await vm(name)).notebook.pid!));

  const since = Date.now();
  const id = await startUpgrade({
    selector: { names: NAMES },
    params: { version: artifact.version },
    canary: 1,
    canarySoakSec: 1,
    maxConcurrency: 2,
  });
  let atKill: OperationDetail | undefined;
  const deadline = Date.now() + 120_000;
  while (!atKill) {
    const op = (await call<OperationDetail>("GET", `/v1/operations/${id}`)).body;
    if (await killWhen(op)) atKill = op;
    else if (op.state !== "running" || Date.now() > deadline)
      throw new Error(`the moment to kill never came: ${JSON.stringify(op)}`);
    else await sleep(20);
  }
  const switched = await Promise.all(NAMES.map(async (name) => exists(install(name).upgradeRecord)));
  await restartController("SIGKILL");
  expect(atKill.state).toBe("running");
  console.log(
    `${artifact.version}: killed with targets ${atKill.targets.items.map((t) => `${t.vmName} ${t.state}`).join(", ")}; switched and not yet confirmed then: ${NAMES.filter((_, i) => switched[i]).join(", ") || "none"}`,
  );

  const op = await finished(id);
  expect(op.state, JSON.stringify(op)).toBe("succeeded");
  expect(op.counts).toMatchObject({ succeeded: 3, failed: 0 });
  for (const name of NAMES) {
    const view = await vm(name);
    expect(serving(view)).toBe(true);
    expect(versionOf(view)).toBe(artifact.version);
    expect(processIdentity(view.notebook.pid!)).toBe(before.get(name));
    expect(await upgradeCommands(name, id)).toHaveLength(1);
    await confirmedOnGuest(name, artifact.version, since);
    const own = await guestEvents(name, since);
    const count = (kind: string) => own.filter((e) => e.kind === kind).length;
    expect({ name, adopted: count("notebook.adopted"), completed: count("agent.upgrade.completed") }).toEqual(
      {
        name,
        adopted: 1,
        completed: 1,
      },
    );
    expect(count("agent.upgrade.rolled_back")).toBe(0);
  }
}

/** Stops the controller with `signal` and starts it again on the same data dir and port. */
async function restartController(signal: NodeJS.Signals): Promise<void> {
  await stopControllerProcess(controller, signal);
  controller = await startControllerProcess(controller.dataDir, port, TOKEN, {
    NBFLEET_REPORT_INTERVAL_SEC: "2",
    NBFLEET_METRICS_REFRESH_SEC: "0.5",
  });
  events.reopen(controller);
  await Promise.all(
    NAMES.map((name) => waitFor(`${name} back`, async () => serving(await vm(name)), 120_000)),
  );
}
