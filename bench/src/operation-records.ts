/**
 * What the simulated agents recorded during one bulk operation (each command's arrival and its
 * result, on the fleet process's clock), read back: how many restarts ran at once, how long a
 * freed slot waited for its next command, how late the simulated restarts answered.
 */
import type { FleetRecord } from "@nbfleet/testkit/sim-fleet-process";

export interface MeanSpread {
  mean: number;
  p50: number;
  p90: number;
}

export interface OperationTrace {
  /** Commands run during the window (each target exactly once when all went well). */
  executed: number;
  /** Most commands between "received" and "result sent" at the same moment. */
  peakConcurrency: number;
  /** The operation's POST until the first agent received its command. */
  firstCommandMs: number;
  /** The last result sent until the bench saw the operation end. */
  lastResultToEndMs: number;
  /** A freed slot's result until the next command reached an agent (the controller's turnaround). */
  slotGapMs: MeanSpread;
  /** How much later than `delayMs` a simulated restart answered (the fleet process's own timer lag). */
  lateMs: MeanSpread;
}

/** The records of the window [startedAt, endedAt] (Date.now() values) of one operation. */
export function traceOperation(
  records: FleetRecord[],
  window: { startedAt: number; endedAt: number },
  options: { concurrency: number; delayMs: number },
): OperationTrace {
  const inWindow = (at: number) => at >= window.startedAt && at <= window.endedAt;
  const inRound = records.map((r) => ({
    ...r,
    received: r.received.filter((e) => inWindow(e.at)),
    executed: r.executed.filter((e) => inWindow(e.at)),
  }));
  const received = inRound.flatMap((r) => r.received.map((e) => e.at));
  const executed = inRound.flatMap((r) => r.executed.map((e) => e.at));
  return {
    executed: executed.length,
    peakConcurrency: peak(inRound),
    firstCommandMs: Math.min(...received) - window.startedAt,
    lastResultToEndMs: window.endedAt - Math.max(...executed),
    slotGapMs: meanSpread(slotGaps(received, executed, options.concurrency)),
    lateMs: meanSpread(lateness(inRound, options.delayMs)),
  };
}

function peak(records: FleetRecord[]): number {
  const intervals: Array<[number, number]> = [];
  for (const record of records) {
    for (const ran of record.executed) {
      const got = record.received.find((r) => r.id === ran.id);
      if (got) intervals.push([got.at, ran.at]);
    }
  }
  return peakOverlap(intervals);
}

/** The most intervals open at once; one ending when another starts does not overlap it. */
export function peakOverlap(intervals: Array<[number, number]>): number {
  const edges = intervals.flatMap(
    ([start, end]): Array<[number, number]> => [
      [start, 1],
      [end, -1],
    ],
  );
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let running = 0;
  let most = 0;
  for (const [, delta] of edges) {
    running += delta;
    most = Math.max(most, running);
  }
  return most;
}

export function meanSpread(values: number[]): MeanSpread {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  const mean = sorted.reduce((sum, v) => sum + v, 0) / Math.max(1, sorted.length);
  return { mean, p50: at(0.5), p90: at(0.9) };
}

/** The i-th result frees the slot the (i + concurrency)-th command takes. */
function slotGaps(received: number[], executed: number[], concurrency: number): number[] {
  const starts = [...received].sort((a, b) => a - b);
  const ends = [...executed].sort((a, b) => a - b);
  const gaps: number[] = [];
  for (let i = 0; i + concurrency < starts.length && i < ends.length; i++)
    gaps.push(starts[i + concurrency]! - ends[i]!);
  return gaps;
}

function lateness(records: FleetRecord[], delayMs: number): number[] {
  return records.flatMap((r) =>
    r.executed.map((e) => e.at - (r.received.find((x) => x.id === e.id)?.at ?? e.at) - delayMs),
  );
}
