import { spawn } from "node:child_process";
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { checkProcess } from "./process-check.js";

describe("checkProcess", () => {
  it("passes for a live process", async () => {
    const check = await checkProcess({ pid: process.pid });
    expect(check).toMatchObject({ name: "process", status: "pass", data: { pid: process.pid } });
  });

  it("fails without a pid", async () => {
    expect(await checkProcess({ pid: null })).toMatchObject({
      status: "fail",
      message: "no notebook process is known",
    });
  });

  it("fails for a process that has exited", async () => {
    const child = spawn("true");
    await once(child, "exit");
    const check = await checkProcess({ pid: child.pid! });
    expect(check.status).toBe("fail");
    expect(check.message).toBe(`notebook process ${child.pid} is not running`);
  });

  it("fails for a zombie", async () => {
    // sh starts a short sleep in the background and becomes `sleep 30`, which never reaps it;
    // the child outlives the exec, so sh itself cannot reap it first.
    const parent = spawn("sh", ["-c", "sleep 0.3 & echo $!; exec sleep 30"], {
      stdio: ["ignore", "pipe", "ignore"],
    });
    try {
      const [chunk] = (await once(parent.stdout!, "data")) as [Buffer];
      const zombie = Number(chunk.toString().trim());
      let check = await checkProcess({ pid: zombie });
      for (let i = 0; i < 150 && check.status === "pass"; i++) {
        await sleep(20);
        check = await checkProcess({ pid: zombie });
      }
      expect(check).toMatchObject({ status: "fail", data: { pid: zombie, state: "Z" } });
      expect(check.message).toContain("has exited (state Z)");
    } finally {
      parent.kill("SIGKILL");
    }
  });
});
