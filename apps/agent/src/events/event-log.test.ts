import { mkdtemp, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import type { AgentEvent } from "@nbfleet/shared";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WriteFailures, type WriteReport } from "../util/write-failures.js";
import { EventLog } from "./event-log.js";

let dir: string;
let file: string;
let reports: WriteReport[];
let failures: WriteFailures;
const logs: EventLog[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-event-log-"));
  file = path.join(dir, "events.jsonl");
  reports = [];
  failures = new WriteFailures((report) => reports.push(report), 0);
});

afterEach(async () => {
  for (const log of logs.splice(0)) log.close();
  await rm(dir, { recursive: true, force: true });
});

const event = (n: number): AgentEvent => ({
  at: new Date(0).toISOString(),
  level: "info",
  kind: "test.event",
  message: `event ${n}`,
});

function open(): EventLog {
  const log = new EventLog(file, failures);
  logs.push(log);
  return log;
}

/** The disk is full: every write to the file fails with ENOSPC (Linux's /dev/full). */
const fillDisk = () => symlink("/dev/full", file);
/** The disk has room again. */
const freeDisk = async () => {
  await rm(file);
  await writeFile(file, "");
};
const linesOf = async () => (await readFile(file, "utf8")).split("\n").filter(Boolean);

describe("EventLog on a full disk", () => {
  it("never rejects, says why, and writes what it kept, in order and once, when space returns", async () => {
    await fillDisk();
    const log = open();
    await expect(log.append(event(1))).resolves.toBeUndefined();
    await expect(log.append(event(2))).resolves.toBeUndefined();
    expect(failures.problems()).toMatchObject([{ what: "event log", file, code: "ENOSPC" }]);
    expect(reports[0]).toMatchObject({ level: "warn", kind: "storage.write_failed" });

    await freeDisk();
    // A later append writes the kept lines before its own: the chain did not stay broken.
    await log.append(event(3));
    expect(await linesOf()).toEqual([1, 2, 3].map((n) => JSON.stringify(event(n))));
    expect(failures.problems()).toEqual([]);
    expect(reports.at(-1)).toMatchObject({ level: "info", kind: "storage.write_resumed" });
    expect((await log.read()).map((e) => e.message)).toEqual(["event 1", "event 2", "event 3"]);
  });

  it("retries by itself once the disk has room, without another append", async () => {
    await fillDisk();
    const log = open();
    await log.append(event(1));
    await freeDisk();
    const lines = await waitFor(
      "the retried write",
      async () => (await linesOf()).length > 0 && linesOf(),
      5000,
    );
    expect(lines).toEqual([JSON.stringify(event(1))]);
  });

  it("keeps at most the newest 1000 lines while it cannot write", async () => {
    await fillDisk();
    const log = open();
    for (let n = 1; n <= 1200; n++) void log.append(event(n));
    await log.append(event(1201));
    expect(log.droppedCount).toBe(201);
    await freeDisk();
    await log.append(event(1202));
    const lines = await linesOf();
    expect(lines).toHaveLength(1000);
    expect(lines[0]).toBe(JSON.stringify(event(203)));
    expect(lines.at(-1)).toBe(JSON.stringify(event(1202)));
  });
});
