/** Order statistics over a run's samples: what every row's figures are made of. */

export function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[index]!;
}

export const median = (values: number[]) => quantile(values, 0.5);

/** Median, p90 and the whole range of a set of rounds: the figure and how far the rounds spread. */
export interface Spread {
  median: number;
  p90: number;
  min: number;
  max: number;
  count: number;
}

export function spreadOf(values: number[]): Spread {
  return {
    median: median(values),
    p90: quantile(values, 0.9),
    min: Math.min(...values),
    max: Math.max(...values),
    count: values.length,
  };
}
