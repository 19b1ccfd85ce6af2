import { mkdtemp, readFile, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WriteFailures } from "../util/write-failures.js";
import { LOG_BUFFER_MAX_BYTES, createAgentLogger } from "./logger.js";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-agent-log-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the agent log on a full disk", () => {
  it("reports the failure instead of throwing, however much is logged, and closes without hanging", async () => {
    const file = path.join(dir, "agent.log");
    await symlink("/dev/full", file);
    const failures = new WriteFailures(() => {}, 0);
    const logger = createAgentLogger(file, 1024 * 1024, failures);
    const line = "x".repeat(1000);
    // Three times what it buffers: the surplus is dropped, never thrown.
    for (let i = 0; i < (3 * LOG_BUFFER_MAX_BYTES) / 1000; i++) logger.log.info({ i }, line);
    await new Promise((resolve) => setImmediate(resolve));
    expect(failures.problems()).toMatchObject([{ what: "agent log", file, code: "ENOSPC" }]);
    logger.close();
  });

  it("writes as usual where there is room", async () => {
    const file = path.join(dir, "agent.log");
    const failures = new WriteFailures(() => {}, 0);
    const logger = createAgentLogger(file, 1024 * 1024, failures);
    logger.log.info({ kind: "test" }, "hello");
    logger.close();
    expect(JSON.parse(await readFile(file, "utf8"))).toMatchObject({ msg: "hello", kind: "test" });
    expect(failures.problems()).toEqual([]);
  });
});
