import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LatestFile } from "./latest-file.js";
import { WriteFailures } from "./write-failures.js";

let dir: string;
let failures: WriteFailures;
const files: LatestFile[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-latest-file-"));
  failures = new WriteFailures(() => {}, 0);
});

afterEach(async () => {
  for (const file of files.splice(0)) file.close();
  await rm(dir, { recursive: true, force: true });
});

// Writes into a directory that does not exist yet fail (ENOENT) until it is made.
function latest(): { target: string; file: LatestFile } {
  const target = path.join(dir, "later", "restarts.json");
  const file = new LatestFile(target, "restart count", failures, { retryMs: { initial: 20, max: 40 } });
  files.push(file);
  return { target, file };
}

describe("LatestFile", () => {
  it("never throws, and lands the newest content once writing works again", async () => {
    const { target, file } = latest();
    await expect(file.write("1\n")).resolves.toBe(false);
    await expect(file.write("2\n")).resolves.toBe(false);
    expect(failures.problems()).toMatchObject([{ what: "restart count", code: "ENOENT", failures: 2 }]);
    await mkdir(path.dirname(target));
    const content = await waitFor("the retried write", () => readFile(target, "utf8"), 5000);
    expect(content).toBe("2\n");
    expect(failures.problems()).toEqual([]);
  });

  it("never writes content a later removal replaced", async () => {
    const { target, file } = latest();
    await file.write("pid 1\n");
    await mkdir(path.dirname(target));
    await expect(file.remove()).resolves.toBe(true);
    await sleep(200);
    await expect(readFile(target, "utf8")).rejects.toMatchObject({ code: "ENOENT" });
  });

  it("writes at once when it can", async () => {
    const { target, file } = latest();
    await mkdir(path.dirname(target));
    await expect(file.write("3\n")).resolves.toBe(true);
    expect(await readFile(target, "utf8")).toBe("3\n");
  });
});
