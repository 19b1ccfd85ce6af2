/**
 * Notebook restarts through the controller with real agents, the whole path: `nbfleet server`
 * (a process of its own) with the local provider, whose sandboxes boot through the real
 * bootstrap (the bundled agent, Debian's Jupyter). Each restart is
 * POST /v1/vms/{name}/notebook/restart until GET /v1/commands/{id}?wait answers with the
 * result — controller → agent → Jupyter stopped and started again until `/api` answers → the
 * result back in the store — one at a time, round-robin over the machines. Every restart must
 * succeed, else the bench fails.
 */
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import type { CommandView } from "@nbfleet/shared";
import {
  type ControllerProcess,
  startControllerProcess,
  stopControllerProcess,
} from "@nbfleet/testkit/controller-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { freePort } from "@nbfleet/testkit/ports";
import { waitFor } from "@nbfleet/testkit/wait";
import { JsonClient } from "./http-client.js";
import { type Spread, spreadOf } from "./stats.js";
import { serving } from "./vm-serving.js";

export interface RealAgentsBenchResult {
  machines: number;
  restarts: number;
  /** POST /v1/vms of every machine until all are connected with a healthy notebook. */
  createMs: number;
  /** POST until the long poll answered `succeeded`, per restart in the order they ran. */
  roundTripMs: number[];
  /** The command's createdAt → finishedAt in the store (the controller's clock). */
  storeMs: number[];
  roundTrip: Spread;
  store: Spread;
}

const COMMAND_WAIT_SEC = 60;

export async function runRealAgentsBench(options: {
  machines: number;
  restarts: number;
}): Promise<RealAgentsBenchResult> {
  const dataDir = makeDataDir("nbf-bench-real-");
  const token = `nbf_${randomBytes(24).toString("base64url")}`;
  const names = Array.from({ length: options.machines }, (_, i) => `real-${i + 1}`);
  let controller: ControllerProcess | undefined;
  let api: JsonClient | undefined;
  try {
    controller = await startControllerProcess(dataDir, await freePort(), token, {
      NBFLEET_LOG_LEVEL: "error",
    });
    const client = new JsonClient(controller.url, token);
    api = client;
    const ready = (name: string) => serving((path) => client.expect(200, "GET", path), name);
    const createStarted = performance.now();
    for (const name of names) await client.expect(201, "POST", "/v1/vms", { name });
    for (const name of names)
      await waitFor(`${name} connected with a healthy notebook`, () => ready(name), 300_000);
    const createMs = performance.now() - createStarted;

    const roundTripMs: number[] = [];
    const storeMs: number[] = [];
    for (let i = 0; i < options.restarts; i++) {
      const name = names[i % names.length]!;
      const t0 = performance.now();
      const sent = await client.expect<CommandView>(202, "POST", `/v1/vms/${name}/notebook/restart`);
      const done = await client.expect<CommandView>(
        200,
        "GET",
        `/v1/commands/${sent.id}?wait=${COMMAND_WAIT_SEC}`,
      );
      roundTripMs.push(performance.now() - t0);
      if (done.state !== "succeeded" || !done.finishedAt)
        throw new Error(`restart ${i + 1} of ${name}: ${done.state} ${JSON.stringify(done.error ?? null)}`);
      storeMs.push(Date.parse(done.finishedAt) - Date.parse(done.createdAt));
      // The next machine's restart starts on a settled fleet: this one serves again.
      await waitFor(`${name} healthy after its restart`, () => ready(name), 60_000);
    }
    return {
      machines: options.machines,
      restarts: options.restarts,
      createMs,
      roundTripMs,
      storeMs,
      roundTrip: spreadOf(roundTripMs),
      store: spreadOf(storeMs),
    };
  } finally {
    if (api) for (const name of names) await api.request("DELETE", `/v1/vms/${name}`).catch(() => undefined);
    api?.close();
    if (controller) await stopControllerProcess(controller);
    await rm(dataDir, { recursive: true, force: true });
  }
}
