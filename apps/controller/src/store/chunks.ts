/**
 * Multi-row statements with few distinct SQL texts. Each row count is another SQL text, and the
 * statement cache prepares (and keeps) every text it sees: with chunk sizes that are powers of
 * two there are at most log2(max) + 1 texts per statement, each prepared once.
 */

/** Splits `rows` into chunks of `max` rows, the rest into descending powers of two (`max` a power of two). */
export function* powerOfTwoChunks<T>(rows: readonly T[], max: number): Generator<T[]> {
  let at = 0;
  while (at < rows.length) {
    let size = max;
    while (size > rows.length - at) size /= 2;
    yield rows.slice(at, at + size);
    at += size;
  }
}

/** The values of an `in (…)` list, padded to a power of two by repeating the last one (same meaning). */
export function padToPowerOfTwo<T>(values: readonly T[]): T[] {
  let size = 1;
  while (size < values.length) size *= 2;
  const padded = [...values];
  while (padded.length < size) padded.push(values[values.length - 1]!);
  return padded;
}

/** Most values one `in (…)` list binds: well below either dialect's limit on bound values. */
export const IN_LIST_MAX = 512;

/** `values` as `in (…)` lists of at most `max`, each padded to a power of two (see padToPowerOfTwo). */
export function* inLists<T>(values: readonly T[], max = IN_LIST_MAX): Generator<T[]> {
  for (let at = 0; at < values.length; at += max) yield padToPowerOfTwo(values.slice(at, at + max));
}
