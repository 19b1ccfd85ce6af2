/** Max concurrency / max errors as the operations API takes them: a count or a share ("10%"). */
export function parseLimit(text: string, what: string, min: number): number | string {
  const value = text.trim();
  if (/^\d+(\.\d+)?%$/.test(value)) return value;
  if (/^\d+$/.test(value) && Number(value) >= min) return Number(value);
  throw new Error(`${what} must be a whole number ≥ ${min} or a share such as 10% (got "${value}")`);
}
