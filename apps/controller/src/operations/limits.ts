/**
 * maxConcurrency and maxErrors as a count or a share of the targets ("10%").
 * Concurrency rounds up (at least 1, at most the target count); the error budget rounds down,
 * so "10%" of 5 targets tolerates no failure rather than one.
 */
import { NbfError } from "../errors.js";

export type Limit = number | string;

const PERCENT = /^(\d+(?:\.\d+)?)%$/;

function parse(field: string, limit: Limit): { count: number } | { percent: number } {
  if (typeof limit === "number") {
    if (!Number.isInteger(limit) || limit < 0)
      throw new NbfError("NBF_OPERATION_INVALID", {
        problem: `${field} must be a whole number or a percentage like "10%", got ${limit}`,
      });
    return { count: limit };
  }
  const trimmed = limit.trim();
  const match = PERCENT.exec(trimmed);
  if (match) {
    const percent = Number(match[1]);
    if (percent > 100)
      throw new NbfError("NBF_OPERATION_INVALID", { problem: `${field} cannot exceed 100%, got ${limit}` });
    return { percent };
  }
  if (/^\d+$/.test(trimmed)) return { count: Number(trimmed) };
  throw new NbfError("NBF_OPERATION_INVALID", {
    problem: `${field} must be a whole number or a percentage like "10%", got '${limit}'`,
  });
}

export function resolveConcurrency(limit: Limit, targets: number): number {
  const parsed = parse("maxConcurrency", limit);
  const raw = "count" in parsed ? parsed.count : Math.ceil((parsed.percent / 100) * targets);
  if ("count" in parsed && parsed.count < 1)
    throw new NbfError("NBF_OPERATION_INVALID", { problem: "maxConcurrency must be at least 1" });
  return Math.max(1, Math.min(raw, Math.max(1, targets)));
}

export function resolveMaxErrors(limit: Limit, targets: number): number {
  const parsed = parse("maxErrors", limit);
  return "count" in parsed ? parsed.count : Math.floor((parsed.percent / 100) * targets);
}
