import { chmod, mkdir, mkdtemp, rm, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sandboxRoot } from "./sandbox-root.js";

describe("sandboxRoot", () => {
  let dataDir: string;
  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), "nbf-root-"));
    await chmod(dataDir, 0o755);
  });
  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it("makes the sandbox root passable but not listable by machines' users", async () => {
    const root = await sandboxRoot(dataDir, false);
    expect(root).toBe(path.join(dataDir, "sandboxes"));
    expect((await stat(root)).mode & 0o777).toBe(0o711);
  });

  it("narrows a root an older version made listable", async () => {
    await mkdir(path.join(dataDir, "sandboxes"), { mode: 0o755 });
    await chmod(path.join(dataDir, "sandboxes"), 0o755);
    const root = await sandboxRoot(dataDir, true);
    expect((await stat(root)).mode & 0o777).toBe(0o711);
  });
});
