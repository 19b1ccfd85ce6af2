/**
 * The simulated fleet, in a process of its own (apart from the controller and from the bench
 * that measures): one SimAgent per seeded VM, speaking the real protocol over real WebSockets,
 * reporting at the interval the controller's welcome gives and answering commands at once.
 *
 *   node --import tsx sim-fleet-process.ts <controller url> <credentials.json> <concurrency> <unhealthyEvery>
 *
 * Prints `{"bench":…}` lines: `connected` once every agent is welcomed, `unhealthy` after every
 * `unhealthyEvery`-th agent reported a failed notebook, and `stats` when stdin says "stats".
 * Agents do not reconnect, so a dropped connection stays visible. Exits on SIGTERM or when
 * stdin closes.
 */
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { type SeededVm, SimFleet } from "@nbfleet/testkit/sim-fleet";

const [url, credentialsFile, concurrencyArg, unhealthyEveryArg] = process.argv.slice(2);
if (!url || !credentialsFile)
  throw new Error("usage: sim-fleet-process <url> <credentials.json> [concurrency] [unhealthyEvery]");
const concurrency = Number(concurrencyArg ?? 200);
const unhealthyEvery = Number(unhealthyEveryArg ?? 20);
const MAX_ATTEMPTS = 20;

const print = (event: string, data: Record<string, unknown>) =>
  process.stdout.write(`${JSON.stringify({ bench: event, ...data })}\n`);

const vms = JSON.parse(await readFile(credentialsFile, "utf8")) as SeededVm[];
const fleet = new SimFleet(url, vms);

let retries = 0;
const started = performance.now();
let next = 0;
const worker = async () => {
  while (next < fleet.agents.length) {
    const agent = fleet.agents[next++]!;
    for (let attempt = 1; ; attempt++) {
      try {
        await agent.connect();
        break;
      } catch (error) {
        // The controller may answer "try later" (1013) or the backlog may overflow; back off and retry.
        if (attempt >= MAX_ATTEMPTS) throw error;
        retries++;
        await new Promise((resolve) =>
          setTimeout(resolve, Math.random() * Math.min(5000, 50 * 2 ** attempt)),
        );
      }
    }
  }
};
await Promise.all(Array.from({ length: Math.min(concurrency, fleet.agents.length) }, worker));
print("connected", { agents: fleet.connectedCount, ms: performance.now() - started, retries });

let unhealthy = 0;
fleet.agents.forEach((agent, index) => {
  if (unhealthyEvery > 0 && index % unhealthyEvery === 0) {
    agent.setNotebook("failed");
    unhealthy++;
  }
});
print("unhealthy", { agents: unhealthy });

const stats = () => {
  const connected = fleet.connectedCount;
  return { connected, dropped: fleet.agents.length - connected };
};

const stop = () => {
  fleet.close();
  setTimeout(() => process.exit(0), 200).unref();
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
const input = createInterface({ input: process.stdin });
input.on("line", (line) => {
  if (line.trim() === "stats") print("stats", stats());
});
input.on("close", stop);
