import { type ChildProcess, spawn } from "node:child_process";
import { appendFile, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Waiters } from "@nbfleet/testkit/waiters";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { capLogFile, openAppend } from "./log-file.js";
import { followLog, tailUpTo } from "./log-follow.js";
import { redactLine } from "./log-redact.js";

let dir: string;
let file: string;
const aborts: AbortController[] = [];
const children: ChildProcess[] = [];
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-follow-"));
  file = path.join(dir, "notebook.log");
});
afterEach(async () => {
  for (const abort of aborts.splice(0)) abort.abort();
  for (const child of children.splice(0)) child.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

function follow(lines: number, options: { transform?: (line: string) => string } = {}) {
  const abort = new AbortController();
  aborts.push(abort);
  const got: string[] = [];
  const batches: string[][] = [];
  const waiters = new Waiters();
  const done = followLog(file, {
    lines,
    follow: true,
    signal: abort.signal,
    pollMs: 20,
    partialAfterMs: 100,
    ...options,
    onLines: (batch) => {
      batches.push(batch);
      got.push(...batch);
      waiters.notify();
    },
  });
  const until = (what: string, probe: () => boolean) => waiters.until(() => probe() || undefined, what, 5000);
  return { got, batches, done, abort, until };
}

/** A notebook-like writer: its own process appending a numbered line every 5 ms to the log. */
async function writer(prefix: string, count: number): Promise<ChildProcess> {
  const handle = await openAppend(file);
  const script = `let i=0;const t=setInterval(()=>{require("fs").writeSync(3,"${prefix} "+(i++)+"\\n");if(i>=${count})clearInterval(t)},5)`;
  const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "ignore", "ignore", handle.fd] });
  await handle.close();
  children.push(child);
  return child;
}

describe("tailUpTo", () => {
  it("gives the last lines, reaching into the rotated part, and ignores a half-written last line", async () => {
    await writeFile(`${file}.1`, "old 1\nold 2\nold 3\n");
    await writeFile(file, "new 1\r\nnew 2\nnew 3 (half");
    const size = Buffer.byteLength("new 1\r\nnew 2\n");
    expect(await tailUpTo(file, size, 2)).toEqual(["new 1", "new 2"]);
    expect(await tailUpTo(file, size, 4)).toEqual(["old 2", "old 3", "new 1", "new 2"]);
    expect(await tailUpTo(path.join(dir, "missing.log"), 100, 5)).toEqual([]);
  });

  it("reads long files backwards in chunks without cutting a line", async () => {
    const lines = Array.from({ length: 20_000 }, (_, i) => `line ${i} ${"x".repeat(40)}`);
    await writeFile(file, `${lines.join("\n")}\n`);
    const size = (await import("node:fs/promises")).stat(file).then((s) => s.size);
    expect(await tailUpTo(file, await size, 9000)).toEqual(lines.slice(-9000));
  });
});

describe("followLog", () => {
  it("sends the tail, then appended lines, a late partial line once it has waited, and stops on abort", async () => {
    await writeFile(file, "a\nb\nc\n");
    const f = follow(2);
    await f.until("the tail", () => f.got.length === 2);
    expect(f.got).toEqual(["b", "c"]);
    expect(f.batches[0]).toEqual([]);
    await appendFile(file, "d\ne");
    await f.until("d and the partial e", () => f.got.length === 4);
    expect(f.got.slice(2)).toEqual(["d", "e"]);
    f.abort.abort();
    await f.done;
  });

  it("keeps following across a restart of the writing process: the new process's lines keep coming", async () => {
    const f = follow(0);
    const first = await writer("first", 20);
    await new Promise((resolve) => first.on("exit", resolve));
    await f.until("the first process's lines", () => f.got.length === 20);
    await writer("second", 20);
    await f.until("the second process's lines", () => f.got.length === 40);
    expect(f.got).toEqual([
      ...Array.from({ length: 20 }, (_, i) => `first ${i}`),
      ...Array.from({ length: 20 }, (_, i) => `second ${i}`),
    ]);
  });

  it("loses no line over copytruncate capping (capped less often than it polls, as the agent does)", async () => {
    const f = follow(0);
    let n = 0;
    let capped = 0;
    for (let round = 0; round < 30; round++) {
      await appendFile(file, Array.from({ length: 7 }, () => `w ${n++}\n`).join(""));
      if (round % 3 === 2) {
        // Unread lines, then the cap: they must come out of notebook.log.1.
        if (await capLogFile(file, 50)) capped++;
        await appendFile(file, `w ${n++}\n`);
        await sleep(50);
      } else {
        await sleep(round % 2 ? 3 : 25);
      }
    }
    await f.until(`all ${n} lines`, () => f.got.length >= n);
    expect(capped).toBe(10);
    expect(f.got).toEqual(Array.from({ length: n }, (_, i) => `w ${i}`));
  });

  it("keeps the lines of a live writer in order across caps", async () => {
    const f = follow(0);
    const child = await writer("w", 300);
    const exited = new Promise((resolve) => child.on("exit", resolve));
    while (child.exitCode === null) {
      await capLogFile(file, 2000);
      await sleep(60);
    }
    await exited;
    await f.until("the last line", () => f.got.at(-1) === "w 299");
    const numbers = f.got.map((line) => Number(line.slice(2)));
    // Only bytes written between the copy and the truncate can be lost (copytruncate's own race).
    expect(numbers).toEqual([...numbers].sort((a, b) => a - b));
    expect(numbers.length).toBeGreaterThan(290);
  });

  it("starts over when the file is replaced or shows up later, and redacts tokens", async () => {
    const f = follow(5, { transform: (line) => redactLine(line, ["s3cr3t-agent-token"]) });
    await f.until("the empty first batch", () => f.batches.length === 1);
    await writeFile(file, "http://127.0.0.1:9999/?token=abcdef0123 and s3cr3t-agent-token\n");
    await f.until("the new file's line", () => f.got.length === 1);
    await writeFile(path.join(dir, "other.log"), "replaced 1\n");
    await rename(path.join(dir, "other.log"), file);
    await f.until("the replacement's line", () => f.got.length === 2);
    expect(f.got).toEqual(["http://127.0.0.1:9999/?token=[redacted] and [redacted]", "replaced 1"]);
  });

  it("without follow sends the tail and ends", async () => {
    await writeFile(file, "x\ny\n");
    const got: string[][] = [];
    await followLog(file, {
      lines: 10,
      follow: false,
      signal: new AbortController().signal,
      onLines: (l) => got.push(l),
    });
    expect(got).toEqual([[], ["x", "y"]]);
  });
});
