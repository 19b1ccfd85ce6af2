import { CHECK_NAMES } from "@nbfleet/shared";
import { describe, expect, it } from "vitest";
import { checkResult } from "./result.js";
import { runChecks } from "./run-checks.js";
import type { CheckTarget } from "./target.js";

// Nothing listens on port 1; no process has pid null.
const stopped: CheckTarget = {
  host: "127.0.0.1",
  port: 1,
  baseUrl: "/",
  token: "t",
  pid: null,
  certFile: "/nonexistent/cert.pem",
  diskPath: "/",
};

describe("runChecks when the notebook is not running", () => {
  it("fails the network checks at once, in CHECK_NAMES order", async () => {
    const checks = await runChecks(stopped, { deep: true });
    expect(checks.map((c) => c.name)).toEqual([...CHECK_NAMES]);
    expect(checks.find((c) => c.name === "process")?.status).toBe("fail");
    for (const name of ["https", "auth", "tls", "kernel", "activity"]) {
      expect(checks.find((c) => c.name === name)).toMatchObject({
        status: "fail",
        message: "notebook not running",
      });
    }
    expect(checks.find((c) => c.name === "resources")?.status).not.toBeUndefined();
  });

  it("leaves the kernel out of a shallow round with no earlier result", async () => {
    const checks = await runChecks(stopped, { deep: false });
    expect(checks.map((c) => c.name)).toEqual(CHECK_NAMES.filter((n) => n !== "kernel"));
  });

  it("does not carry an old kernel pass over a stopped server", async () => {
    const previous = checkResult("kernel", "pass", "fine an hour ago", new Date(0));
    const checks = await runChecks(stopped, { deep: false, previousKernelCheck: previous });
    expect(checks.find((c) => c.name === "kernel")).toMatchObject({
      status: "fail",
      message: "notebook not running",
    });
  });
});
