import { readFileSync, statSync } from "node:fs";
import path from "node:path";
import { runCli } from "@nbfleet/testkit/cli";
import { type TestController, startTestController } from "@nbfleet/testkit/controller";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { SimFleet, seedVms } from "@nbfleet/testkit/sim-fleet";
import { verify } from "@node-rs/argon2";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { progressText } from "./op.js";

let controller: TestController;
let fleet: SimFleet;

beforeAll(async () => {
  controller = await startTestController({ settings: { reportIntervalSec: 1 } });
  const vms = await seedVms(controller.app, { count: 4, labels: (i) => ({ team: i < 2 ? "a" : "b" }) });
  fleet = new SimFleet(controller.url, vms, { record: true });
  fleet.byName("sim-3")!.options.fail = (command) =>
    command.name === "notebook.stop" ? { code: "NBF_TEST_BROKEN", message: "cannot stop" } : undefined;
  await fleet.connectAll();
}, 60_000);

afterAll(async () => {
  fleet?.close();
  await controller?.close();
});

const nbfleet = (...args: string[]) => runCli(controller, ...args);

describe("nbfleet op", () => {
  it("runs an action over a label selection and prints every target (JSON: nothing extra)", async () => {
    const run = await nbfleet("--json", "op", "run", "notebook.restart", "--selector", "team=a", "-c", "1");
    expect(run.code).toBe(0);
    expect(run.stderr).toBe("");
    const out = JSON.parse(run.stdout);
    expect(out.operation).toMatchObject({ state: "succeeded", total: 2, maxConcurrency: 1 });
    expect(out.targets.map((t: { vmName: string; state: string }) => [t.vmName, t.state])).toEqual([
      ["sim-0", "succeeded"],
      ["sim-1", "succeeded"],
    ]);
    const table = await nbfleet("op", "show", out.operation.id);
    expect(table.stdout).toMatch(/sim-0\s+│\s+succeeded/);
    const list = await nbfleet("op", "ls");
    expect(list.stdout).toContain(out.operation.id);
  }, 60_000);

  it("exits 1 and names the failure when a target fails; no progress bar without a terminal", async () => {
    const run = await nbfleet("op", "run", "notebook.stop", "--name", "sim-3", "--name", "sim-2", "-e", "1");
    expect(run.code).toBe(1);
    expect(run.stdout).toContain("NBF_TEST_BROKEN: cannot stop");
    expect(run.stdout).toMatch(/failed: 1 succeeded, 1 failed/);
    expect(run.stderr).not.toContain("█");
    const cancel = await nbfleet("op", "cancel", run.stdout.match(/operation (op_\w+)/)![1]!);
    expect(cancel.code).toBe(2);
    expect(cancel.stderr).toContain("NBF_OPERATION_FINISHED");
  }, 60_000);

  it("rotates passwords into a new 0600 file, never printing them, and never overwrites a file", async () => {
    const file = path.join(makeDataDir("nbf-op-", 0o700), "passwords.tsv");
    const run = await nbfleet("op", "run", "notebook.password", "--all", "-c", "4", "--out", file);
    expect(run.code).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const lines = readFileSync(file, "utf8")
      .trim()
      .split("\n")
      .map((l) => l.split("\t") as [string, string]);
    expect(lines.map(([name]) => name)).toEqual(["sim-0", "sim-1", "sim-2", "sim-3"]);
    for (const [name, password] of lines) {
      expect(run.stdout + run.stderr).not.toContain(password);
      const hash = fleet.byName(name)!.passwordHashes.at(-1)!;
      expect(await verify(hash.slice("argon2:".length), password)).toBe(true);
    }
    const before = (await controller.app.nbfleet.store.operations.list(100)).length;
    const again = await nbfleet("op", "run", "notebook.password", "--all", "--out", file);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("exists");
    expect((await controller.app.nbfleet.store.operations.list(100)).length).toBe(before);
  }, 60_000);

  it("prints each new password once without --out", async () => {
    const run = await nbfleet("op", "run", "notebook.password", "--name", "sim-1");
    expect(run.code).toBe(0);
    const password = run.stdout.match(/sim-1\t(\S+)/)![1]!;
    expect(run.stdout.split(password)).toHaveLength(2);
    const hash = fleet.byName("sim-1")!.passwordHashes.at(-1)!;
    expect(await verify(hash.slice("argon2:".length), password)).toBe(true);
  }, 60_000);

  it("draws progress as a bar with counts", () => {
    const text = progressText({
      action: "notebook.restart",
      total: 8,
      counts: { pending: 2, running: 2, succeeded: 3, failed: 1, skipped: 0, cancelled: 0 },
      cancelRequestedAt: null,
    } as Parameters<typeof progressText>[0]);
    expect(text).toBe("notebook.restart ████████████░░░░░░░░░░░░ 4/8  ✔ 3  ✖ 1  ⟳ 2");
  });
});
