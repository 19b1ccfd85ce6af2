/**
 * Provider `azure` at fleet scale, offline: N VMs created at once through the real Azure SDK
 * against the HTTPS Resource Manager emulator (guests off: this measures the Resource Manager
 * path), once as is and once with a share of the writes answered 429 + Retry-After, in several
 * rounds (the ratio moves with the emulator's and the SDK's timers; the row gives the median
 * round and the spread). Every create must succeed, or the bench fails: a create that failed
 * fast would make a throttled run look quicker. Reports total time, Resource Manager writes per VM once the shared network exists (every attempt
 * counts, including those answered 429), failed creates, orphaned resources after the run, and
 * what is left once every VM is deleted again.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { DEFAULT_DURATIONS, startEmulator } from "@nbfleet/azure-emulator";
import { emulatorProvider } from "@nbfleet/testkit/azure";

export interface AzureRun {
  vms: number;
  throttleRate: number;
  totalMs: number;
  /** Write requests the emulator received for the VMs (all attempts). */
  writes: number;
  writesPerVm: number;
  /** 429s injected by the fault rule, and 429s from the subscription's write/read buckets. */
  injected429: number;
  bucket429: number;
  /** HTTP attempts the SDK made for the creates (reads, polls and writes, retries included). */
  attempts: number;
  failed: number;
  firstFailure: string | null;
  orphans: number;
  /** Resources other than the shared NSG and VNet left after deleting every VM. */
  leftAfterDelete: number;
  deleteFailed: number;
  maxInFlight: number;
}

export interface AzureBenchResult {
  vms: number;
  throttleRate: number;
  retryAfterMs: number;
  maxConcurrency: number;
  durations: typeof DEFAULT_DURATIONS;
  /** The pair of runs of the median round. */
  baseline: AzureRun;
  throttled: AzureRun;
  /** throttled.totalMs / baseline.totalMs of the median round */
  timeRatio: number;
  /** Every round's ratio, in the order run. */
  roundRatios: number[];
}

export interface AzureBenchOptions {
  vms: number;
  throttleRate: number;
  retryAfterMs: number;
  maxConcurrency?: number;
  rounds: number;
}

const CONTEXT = {
  bootstrapToken: "nbfb_benchmark-token-unused",
  controllerUrl: "https://controller.invalid",
  passwordHash: "sha1:0123456789ab:0123456789abcdef0123456789abcdef01234567",
};

async function runOnce(options: AzureBenchOptions, throttleRate: number): Promise<AzureRun> {
  const dataDir = await mkdtemp(path.join(tmpdir(), "nbf-azure-bench-"));
  const emu = await startEmulator({ dataDir, guests: "none", durations: DEFAULT_DURATIONS });
  try {
    const provider = emulatorProvider(emu, {
      resourceGroup: "nbfleet-bench",
      maxConcurrency: options.maxConcurrency ?? 10,
      // The SDK's own retry delays (the emulator helper shortens them for tests).
      retry: { retryDelayInMs: 1000, maxRetryDelayInMs: 30_000 },
    });
    await provider.ensureFleet();
    emu.emulator.resetStats();
    const attemptsBefore = provider.counters.attempts;
    if (throttleRate > 0) {
      emu.emulator.addFault({
        method: "write",
        status: 429,
        probability: throttleRate,
        retryAfterMs: options.retryAfterMs,
      });
    }
    const names = Array.from({ length: options.vms }, (_, i) => `bench${String(i + 1).padStart(3, "0")}`);
    let maxInFlight = 0;
    const sampler = setInterval(() => {
      maxInFlight = Math.max(maxInFlight, provider.inFlight.active);
    }, 20);
    const started = performance.now();
    const results = await Promise.allSettled(
      names.map((name) => provider.create({ name, labels: {}, providerData: null }, CONTEXT)),
    );
    const totalMs = performance.now() - started;
    const attempts = provider.counters.attempts - attemptsBefore;
    clearInterval(sampler);
    const stats = emu.emulator.getStats();
    emu.emulator.faults.clear();

    const created = names.flatMap((name, i) => {
      const result = results[i]!;
      return result.status === "fulfilled"
        ? [{ name, labels: {}, providerData: result.value.providerData }]
        : [];
    });
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    const report = await provider.reconcile(created);
    const deletes = await Promise.allSettled(created.map((vm) => provider.delete(vm)));
    const shared = new Set(["Microsoft.Network/networkSecurityGroups", "Microsoft.Network/virtualNetworks"]);
    const left = emu.emulator.inventory().resources.filter((r) => !shared.has(r.type));
    return {
      vms: options.vms,
      throttleRate,
      totalMs,
      writes: stats.writes,
      writesPerVm: stats.writes / options.vms,
      injected429: stats.faultsFired,
      bucket429: stats.throttled - stats.faultsFired,
      attempts,
      failed: failures.length,
      firstFailure: failures[0] ? String((failures[0].reason as Error)?.message ?? failures[0].reason) : null,
      orphans: report.orphans.length,
      leftAfterDelete: left.length,
      deleteFailed: deletes.filter((d) => d.status === "rejected").length,
      maxInFlight,
    };
  } finally {
    await emu.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

function mustAllSucceed(run: AzureRun): AzureRun {
  if (run.failed > 0)
    throw new Error(
      `azure bench: ${run.failed} of ${run.vms} creates failed with ${run.throttleRate * 100} % of writes answered 429; first: ${run.firstFailure}`,
    );
  return run;
}

export async function runAzureBench(options: AzureBenchOptions): Promise<AzureBenchResult> {
  if (!Number.isInteger(options.rounds) || options.rounds < 1)
    throw new Error(`--azure-rounds must be a whole number ≥ 1, not ${options.rounds}`);
  const rounds: { baseline: AzureRun; throttled: AzureRun; ratio: number }[] = [];
  for (let i = 0; i < options.rounds; i++) {
    const baseline = mustAllSucceed(await runOnce(options, 0));
    const throttled = mustAllSucceed(await runOnce(options, options.throttleRate));
    rounds.push({ baseline, throttled, ratio: throttled.totalMs / baseline.totalMs });
  }
  const byRatio = [...rounds].sort((a, b) => a.ratio - b.ratio);
  const { baseline, throttled } = byRatio[Math.ceil(byRatio.length / 2) - 1]!;
  return {
    vms: options.vms,
    throttleRate: options.throttleRate,
    retryAfterMs: options.retryAfterMs,
    maxConcurrency: options.maxConcurrency ?? 10,
    durations: DEFAULT_DURATIONS,
    baseline,
    throttled,
    timeRatio: throttled.totalMs / baseline.totalMs,
    roundRatios: rounds.map((r) => r.ratio),
  };
}
