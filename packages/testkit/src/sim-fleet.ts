/**
 * Many simulated agents at once, for bulk tests and the benchmark: VMs seeded straight into
 * the store with credentials (no provider, no password hashing), then agents connected with
 * bounded concurrency. All agents share one ticker.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { hashSecret, newAgentCredential } from "@nbfleet/controller";
import type { NbfleetApp } from "@nbfleet/controller";
import { SimAgent, type SimAgentOptions, SimTicker } from "./sim-agent.js";

export interface SeededVm {
  name: string;
  credential: string;
}

/** Creates `count` VMs named `<prefix>-<n>` (zero-padded) with agent credentials. */
export async function seedVms(
  app: NbfleetApp,
  options: { count: number; prefix?: string; labels?: (index: number) => Record<string, string> },
): Promise<SeededVm[]> {
  const { store } = app.nbfleet;
  const prefix = options.prefix ?? "sim";
  const width = String(options.count - 1).length;
  const out: SeededVm[] = [];
  for (let i = 0; i < options.count; i++) {
    const name = `${prefix}-${String(i).padStart(width, "0")}`;
    const credential = newAgentCredential();
    await store.vms.insert({
      name,
      provider: app.nbfleet.provider.name,
      state: "running",
      labels: options.labels?.(i) ?? {},
      passwordHash: null,
    });
    await store.agentSecrets.issueCredential(name, hashSecret(credential));
    out.push({ name, credential });
  }
  return out;
}

/**
 * Agent i's replica list: it starts on replica i mod n and, after a drop, goes on forwards or
 * backwards through the list (every other agent), so a dead replica's agents split over the
 * others instead of all landing on the next one.
 */
function dialOrder(urls: string[], i: number): { url: string; urls: string[] } {
  const n = urls.length;
  const step = Math.floor(i / n) % 2 === 0 ? 1 : n - 1;
  const order = Array.from({ length: n }, (_, k) => urls[(i + k * step) % n]!);
  return { url: order[0]!, urls: order };
}

export class SimFleet {
  readonly agents: SimAgent[] = [];
  readonly ticker: SimTicker;

  constructor(
    readonly url: string,
    vms: SeededVm[],
    options: Omit<Partial<SimAgentOptions>, "url" | "token" | "ticker"> & { tickMs?: number } = {},
  ) {
    this.ticker = new SimTicker(options.tickMs ?? 250);
    for (const [i, vm] of vms.entries()) {
      this.agents.push(
        new SimAgent({
          record: false,
          ...options,
          ...(options.urls?.length ? dialOrder(options.urls, i) : { url }),
          token: vm.credential,
          hostname: vm.name,
          ticker: this.ticker,
        }),
      );
    }
  }

  /** Connects every agent, at most `concurrency` handshakes at a time; resolves with the time taken. */
  async connectAll(concurrency = 200): Promise<number> {
    return (await this.connectAllRetrying(concurrency, 1)).ms;
  }

  /**
   * Like connectAll, but a refused handshake is tried again (up to `attempts` times, with
   * jittered exponential backoff): a controller may answer "come back later" (1013) while
   * thousands connect at once.
   */
  async connectAllRetrying(concurrency: number, attempts: number): Promise<{ ms: number; retries: number }> {
    const started = performance.now();
    let retries = 0;
    let next = 0;
    const worker = async () => {
      while (next < this.agents.length) {
        const agent = this.agents[next++]!;
        for (let attempt = 1; ; attempt++) {
          try {
            await agent.connect();
            break;
          } catch (error) {
            if (attempt >= attempts) throw error;
            retries++;
            await sleep(Math.random() * Math.min(5000, 50 * 2 ** attempt));
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, this.agents.length) }, worker));
    return { ms: performance.now() - started, retries };
  }

  get connectedCount(): number {
    return this.agents.filter((a) => a.connected).length;
  }

  byName(name: string): SimAgent | undefined {
    return this.agents.find((a) => a.hostname === name);
  }

  close(): void {
    for (const agent of this.agents) agent.close();
  }
}
