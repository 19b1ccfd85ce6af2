/**
 * A notebook restart that lands while the deep kernel check has a kernel open (Debian's
 * Jupyter, the real agent CLI): the check against the old server is cancelled and its result
 * dropped, so the machine is healthy again within seconds instead of carrying a "socket hang
 * up" kernel failure until the next deep check five minutes later; and the new server gets a
 * kernel check of its own soon after. And a deep check asked while the new server is still
 * starting (its pid known, its port not yet open) does not fail the kernel check against it.
 */
import { readFile } from "node:fs/promises";
import type { AgentState } from "@nbfleet/shared";
import { type RunningAgent, startAgent, stopAgent } from "@nbfleet/testkit/agent-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { eventually, waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dataPaths } from "../../src/config/paths.js";
import { fetchEvents, fetchState, sendCommand } from "../../src/control/client.js";
import { requestApi } from "../../src/health/http.js";

let agent: RunningAgent | undefined;
let dataDir: string;
let port: number;

beforeAll(async () => {
  dataDir = makeDataDir("nbf-deep-restart-");
  port = await freePort();
  // The shipped intervals: reports every 15 s, a deep check every 300 s.
  agent = await startAgent(dataDir, port, { password: "restart me while I check" });
});

afterAll(async () => {
  if (agent) await stopAgent(agent, "SIGINT");
});

/** Running and no check failing (a busy test machine may make `resources` warn about cpu). */
function healthy(state: AgentState): boolean {
  return (
    state.notebook.state === "running" &&
    state.health.checks.every(
      (c) => c.status === "pass" || (c.name === "resources" && c.status === "warn" && /^cpu/.test(c.message)),
    )
  );
}

describe("a notebook restart during the deep kernel check", () => {
  it("leaves the machine healthy within 10 s, and the new server gets its own kernel check", async () => {
    const paths = dataPaths(dataDir);
    const token = (await readFile(paths.agentTokenFile, "utf8")).trim();
    const server = { host: "127.0.0.1", port, baseUrl: "/", certFile: paths.certFile };
    const kernelsOpen = async () => {
      const res = await requestApi(server, { path: "api/kernels", token, timeoutMs: 2000 });
      return Array.isArray(res.body) ? res.body.length : 0;
    };
    const before = await waitFor("a healthy server", async () => {
      const state = await fetchState(paths.controlSocket);
      return healthy(state) && state;
    });
    // The first deep check of this server has run, and its kernel is gone.
    await waitFor(
      "a first kernel check",
      async () => (await fetchState(paths.controlSocket)).health.checks.some((c) => c.name === "kernel"),
      30_000,
    );
    await waitFor("no kernel open", async () => (await kernelsOpen()) === 0, 30_000);

    const deep = sendCommand(paths.controlSocket, "diagnose", {});
    await waitFor("the deep check's kernel", async () => (await kernelsOpen()) > 0, 30_000);
    const restartedAt = Date.now();
    const restarted = await sendCommand(paths.controlSocket, "notebook.restart", {});
    expect(restarted.ok, JSON.stringify(restarted)).toBe(true);

    const after = await waitFor(
      "healthy again with a new server",
      async () => {
        const state = await fetchState(paths.controlSocket);
        return state.notebook.pid !== before.notebook.pid && healthy(state) && state;
      },
      10_000,
    ).catch(async (error: Error) => {
      const state = await fetchState(paths.controlSocket);
      throw new Error(`${error.message}; health now: ${JSON.stringify(state.health.reasons)}`);
    });
    const seconds = (Date.now() - restartedAt) / 1000;
    console.log(`healthy ${seconds.toFixed(1)} s after the restart was fired`);
    expect(seconds).toBeLessThan(10);
    expect(after.health.checks.find((c) => c.name === "kernel")?.status ?? "none").not.toBe("fail");
    await deep;

    // The restart really came while the deep check ran: the agent cancelled it.
    const events = await fetchEvents(paths.controlSocket, 100);
    const cancelled = events.filter(
      (e) => e.kind === "health.deep_check_cancelled" && Date.parse(e.at) >= restartedAt - 1000,
    );
    expect(cancelled.length, JSON.stringify(events.map((e) => e.kind))).toBeGreaterThan(0);

    // A kernel check of the new server follows within seconds, not at the next 300 s interval.
    const checked = await waitFor(
      "a kernel check of the new server",
      async () => {
        const state = await fetchState(paths.controlSocket);
        const kernel = state.health.checks.find((c) => c.name === "kernel");
        return state.notebook.pid === after.notebook.pid && kernel?.status === "pass" && state;
      },
      30_000,
    );
    expect(healthy(checked)).toBe(true);
  });

  it("runs no kernel check against a server still starting: a deep round then does not fail it", async () => {
    const paths = dataPaths(dataDir);
    const before = await waitFor("a healthy server", async () => {
      const state = await fetchState(paths.controlSocket);
      return healthy(state) && state;
    });
    const restarting = sendCommand(paths.controlSocket, "notebook.restart", {});
    const starting = await eventually(
      () => fetchState(paths.controlSocket),
      (state) =>
        state.notebook.state === "starting" &&
        state.notebook.pid !== null &&
        state.notebook.pid !== before.notebook.pid,
      30_000,
      10,
    );
    // The deep round a periodic report would run when no deep check has completed lately.
    const diagnosed = await sendCommand(paths.controlSocket, "diagnose", {});
    expect(diagnosed.ok, JSON.stringify(diagnosed)).toBe(true);
    expect((await restarting).ok).toBe(true);

    const kernelFailures = new Set<string>();
    const checked = await waitFor(
      "the new server healthy, with a passing kernel check of its own",
      async () => {
        const state = await fetchState(paths.controlSocket);
        const kernel = state.health.checks.find((c) => c.name === "kernel");
        if (kernel?.status === "fail") kernelFailures.add(kernel.message);
        return (
          state.notebook.pid === starting.notebook.pid && kernel?.status === "pass" && healthy(state) && state
        );
      },
      30_000,
    ).catch((error: Error) => {
      throw new Error(`${error.message}; kernel check failures seen: ${[...kernelFailures].join(" | ")}`);
    });
    expect(checked.notebook.pid).toBe(starting.notebook.pid);
    expect([...kernelFailures]).toEqual([]);
  });
});
