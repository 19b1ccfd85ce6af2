/**
 * The periodic reconcile: asks the provider what it holds for the machines the controller knows
 * (only machines at rest: nothing is provisioning, starting, stopping or deleting them) and
 * brings the store in line. A machine gone from the provider becomes `failed` with a message
 * that says so; a machine stopped or started outside nbfleet takes the provider's state;
 * resources of the fleet that belong to no machine are reported as an event (once per change).
 * A change is applied only if the machine was not touched since it was read.
 */
import type { VmState } from "@nbfleet/shared";
import type { FastifyBaseLogger } from "fastify";
import type { EventBus } from "../events/bus.js";
import type { Provider, ReconcileReport } from "../providers/types.js";
import type { Store } from "../store/store.js";
import type { VmRecord } from "../store/vms-repo.js";

const AT_REST: VmState[] = ["running", "stopped", "failed"];
const PAGE = 500;

export interface ReconcilerOptions {
  store: Store;
  bus: EventBus;
  provider: Provider;
  intervalMs: number;
  log: FastifyBaseLogger;
}

export interface ReconcileOutcome {
  report: ReconcileReport;
  markedMissing: string[];
  stateChanged: Array<{ name: string; from: VmState; to: VmState }>;
}

export class Reconciler {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<ReconcileOutcome | null> | null = null;
  private lastOrphans = "";

  constructor(private readonly options: ReconcilerOptions) {}

  get enabled(): boolean {
    return this.options.provider.reconcile !== undefined && this.options.intervalMs > 0;
  }

  start(): void {
    if (!this.enabled || this.timer) return;
    this.timer = setInterval(() => {
      this.runOnce().catch((error) => this.options.log.warn({ err: error }, "reconcile failed"));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running?.catch(() => undefined);
  }

  /** One pass (a pass already under way is joined, not doubled); null when the provider cannot reconcile. */
  runOnce(): Promise<ReconcileOutcome | null> {
    this.running ??= this.pass().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  private async pass(): Promise<ReconcileOutcome | null> {
    const { provider, store, bus, log } = this.options;
    if (!provider.reconcile) return null;
    const known = await this.machinesAtRest();
    const report = await provider.reconcile(
      known.map((vm) => ({ name: vm.name, labels: vm.labels, providerData: vm.providerData })),
    );
    const byName = new Map(known.map((vm) => [vm.name, vm]));
    const outcome: ReconcileOutcome = { report, markedMissing: [], stateChanged: [] };

    for (const name of report.missing) {
      const seen = byName.get(name);
      if (!seen || seen.state === "failed" || !(await this.untouched(seen))) continue;
      const error = `the machine is gone from provider ${provider.name} (deleted outside nbfleet); delete it here to forget it`;
      await store.vms.update(name, { state: "failed", error });
      bus.emit({ vmName: name, kind: "vm.missing", level: "error", message: `VM ${name}: ${error}` });
      outcome.markedMissing.push(name);
    }
    for (const [name, observed] of Object.entries(report.states)) {
      const seen = byName.get(name);
      const settled = observed === "running" || observed === "stopped";
      if (
        !seen ||
        !settled ||
        seen.state === observed ||
        seen.state === "failed" ||
        !(await this.untouched(seen))
      ) {
        continue;
      }
      await store.vms.update(name, { state: observed });
      bus.emit({
        vmName: name,
        kind: "vm.state",
        level: "warn",
        message: `VM ${name} is ${observed} in provider ${provider.name} (changed outside nbfleet; it was ${seen.state})`,
      });
      outcome.stateChanged.push({ name, from: seen.state, to: observed });
    }
    const orphanKey = report.orphans
      .map((o) => o.id.toLowerCase())
      .sort()
      .join("\n");
    if (orphanKey !== this.lastOrphans) {
      this.lastOrphans = orphanKey;
      if (report.orphans.length > 0) {
        const list = report.orphans.map((o) => `${o.type}/${o.name}`).join(", ");
        bus.emit({
          vmName: null,
          kind: "provider.orphans",
          level: "warn",
          message: `provider ${provider.name} holds ${report.orphans.length} resource(s) of no known machine: ${list}`,
          data: { orphans: report.orphans },
        });
        log.warn({ orphans: report.orphans }, "orphaned provider resources");
      }
    }
    return outcome;
  }

  private async machinesAtRest(): Promise<VmRecord[]> {
    const { store, provider } = this.options;
    const out: VmRecord[] = [];
    for (let after: string | undefined; ; ) {
      const page = await store.vms.list({ limit: PAGE, ...(after !== undefined ? { after } : {}) });
      out.push(...page.filter((vm) => vm.provider === provider.name && AT_REST.includes(vm.state)));
      if (page.length < PAGE) return out;
      after = page[page.length - 1]!.name;
    }
  }

  private async untouched(seen: VmRecord): Promise<boolean> {
    const now = await this.options.store.vms.get(seen.name);
    return now !== undefined && now.state === seen.state && now.updatedAt === seen.updatedAt;
  }
}
