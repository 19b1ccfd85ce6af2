import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { SignalHandler, SignalKind, Signals } from "../cluster/signals.js";
import type { AgentGateway } from "../gateway/gateway.js";
import { HealthWatch, REASK_MS } from "./health-watch.js";

/** Another replica's view: what this one sent, and a way to deliver what it would receive. */
function cluster() {
  const sent: Array<[SignalKind, string[]]> = [];
  const handlers = new Map<SignalKind, SignalHandler>();
  const signals = {
    clustered: true,
    send: (kind: SignalKind, ids: readonly string[] = []) => void sent.push([kind, [...ids]]),
    on: (kind: SignalKind, handler: SignalHandler) => {
      handlers.set(kind, handler);
      return () => handlers.delete(kind);
    },
    onResync: () => () => {},
  } as unknown as Signals;
  const gateway = { onState: () => () => {}, isConnected: () => false } as unknown as AgentGateway;
  return { sent, signals, gateway, deliver: (kind: SignalKind, ids: string[]) => handlers.get(kind)?.(ids) };
}

const asks = (sent: Array<[SignalKind, string[]]>) => sent.filter(([kind]) => kind === "health.watch");

describe("the rolling gate's health watch across replicas", () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  // A holder keeps watches in memory only: one that missed the ask (its listener reconnecting
  // after a slow self-probe, or the agent moved to a replica that never heard it) stays silent.
  it("asks the agent's holder again every REASK_MS while the wait lasts, and stops after it", async () => {
    const { sent, signals, gateway, deliver } = cluster();
    const watch = new HealthWatch(gateway, signals);
    const gate = watch.waitServing("vm-1", 60_000);
    expect(asks(sent)).toEqual([["health.watch", ["vm-1"]]]);

    await vi.advanceTimersByTimeAsync(REASK_MS * 2);
    expect(asks(sent)).toHaveLength(3);

    deliver("vm.serving", ["vm-1"]);
    expect(await gate.promise).toBe(true);
    await vi.advanceTimersByTimeAsync(REASK_MS * 3);
    expect(asks(sent)).toHaveLength(3);
    watch.close();
  });

  it("names every VM still waited for in one ask", async () => {
    const { sent, signals, gateway, deliver } = cluster();
    const watch = new HealthWatch(gateway, signals);
    const gates = ["vm-1", "vm-2", "vm-3"].map((name) => watch.waitServing(name, 60_000));
    deliver("vm.serving", ["vm-2"]);
    expect(await gates[1]!.promise).toBe(true);
    sent.length = 0;
    await vi.advanceTimersByTimeAsync(REASK_MS);
    expect(asks(sent)).toEqual([["health.watch", ["vm-1", "vm-3"]]]);
    watch.close();
    expect(await gates[0]!.promise).toBe(false);
  });

  it("does not ask at all for an agent held on its own replica", async () => {
    const { sent, signals } = cluster();
    const gateway = { onState: () => () => {}, isConnected: () => true } as unknown as AgentGateway;
    const watch = new HealthWatch(gateway, signals);
    watch.waitServing("vm-1", 60_000);
    await vi.advanceTimersByTimeAsync(REASK_MS * 2);
    expect(asks(sent)).toEqual([]);
    watch.close();
  });
});
