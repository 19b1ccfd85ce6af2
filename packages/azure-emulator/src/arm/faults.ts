/**
 * Injected faults: rules matched against each Resource Manager request. A rule either answers
 * the request itself (429 with Retry-After, 500, …), lets it through but makes its long-running
 * operation fail with a given Azure error, makes that operation slower, or never answers at all
 * (`hang`, so a client's deadlines can be tested). Rules with `polls: true` match the polls of a
 * resource's long-running operations instead of requests to the resource. Probabilities use a
 * seeded generator so a run can be repeated.
 */
import { randomUUID } from "node:crypto";

export interface FaultRule {
  /** Given back by addFault; removes the rule with removeFault. */
  id?: string;
  /** `write` (default: PUT, PATCH, POST, DELETE), `read` (GET, HEAD), `any`, or one method. */
  method?: "write" | "read" | "any" | "GET" | "HEAD" | "PUT" | "PATCH" | "POST" | "DELETE";
  /** Resource type, e.g. `Microsoft.Network/networkInterfaces` (case-insensitive). */
  resourceType?: string;
  /** Resource name (case-insensitive). */
  name?: string;
  /** A POST action such as `start` or `deallocate`. */
  action?: string;
  /** Chance that a matching request is hit, 0..1 (default 1). */
  probability?: number;
  /** The rule fires at most this many times (default: no limit). */
  count?: number;
  /** Answer with this status instead of handling the request: 429, 500, 503, … */
  status?: number;
  /** With status 429/503: the Retry-After the answer carries (default 1000 ms). */
  retryAfterMs?: number;
  /** Error code and message of the answer or of the failed operation. */
  code?: string;
  message?: string;
  /** Accept the request, then end its long-running operation Failed with code/message. */
  failOperation?: boolean;
  /** Accept the request; its long-running operation takes this much longer. */
  delayMs?: number;
  /** Never answer (until the emulator closes): the client's own deadline has to end the request. */
  hang?: boolean;
  /**
   * Match polls (`GET …/operations/{id}`, `…/operationResults/{id}`) of long-running operations
   * on the matching resources instead of requests to them; only with `status` or `hang`.
   */
  polls?: boolean;
}

export interface RequestFacts {
  method: string;
  resourceType: string | null;
  name: string | null;
  action: string | null;
  /** A poll of a long-running operation on the resource named by the other facts. */
  poll?: boolean;
}

export interface FaultHit {
  rule: Required<Pick<FaultRule, "id">> & FaultRule;
}

const WRITES = new Set(["PUT", "PATCH", "POST", "DELETE"]);

/** Azure's answer when the region has no capacity for the VM size: the VM's PUT operation fails. */
export const ALLOCATION_FAILED: FaultRule = {
  resourceType: "Microsoft.Compute/virtualMachines",
  method: "PUT",
  failOperation: true,
  code: "AllocationFailed",
  message: "Allocation failed. We do not have sufficient capacity for the requested VM size in this region.",
};

export class Faults {
  private rules: Array<FaultRule & { id: string; fired: number }> = [];
  private random: () => number;
  fired = 0;

  constructor(seed = 1) {
    this.random = mulberry32(seed);
  }

  add(rule: FaultRule): string {
    const problems = checkRule(rule);
    if (problems.length > 0) throw new Error(`invalid fault rule: ${problems.join("; ")}`);
    const id = rule.id ?? randomUUID();
    this.rules.push({ ...rule, id, fired: 0 });
    return id;
  }

  remove(id: string): boolean {
    const before = this.rules.length;
    this.rules = this.rules.filter((rule) => rule.id !== id);
    return this.rules.length !== before;
  }

  clear(): void {
    this.rules = [];
  }

  list(): Array<FaultRule & { id: string; fired: number }> {
    return this.rules.map((rule) => ({ ...rule }));
  }

  reseed(seed: number): void {
    this.random = mulberry32(seed);
  }

  /** The first rule that matches and fires for this request (counted), or null. */
  match(facts: RequestFacts): (FaultRule & { id: string }) | null {
    for (const rule of this.rules) {
      if (rule.count !== undefined && rule.fired >= rule.count) continue;
      if (!matches(rule, facts)) continue;
      if (rule.probability !== undefined && this.random() >= rule.probability) continue;
      rule.fired += 1;
      this.fired += 1;
      return rule;
    }
    return null;
  }
}

function matches(rule: FaultRule, facts: RequestFacts): boolean {
  if ((rule.polls ?? false) !== (facts.poll ?? false)) return false;
  const method = rule.method ?? (rule.polls ? "read" : "write");
  if (method === "write" && !WRITES.has(facts.method)) return false;
  if (method === "read" && WRITES.has(facts.method)) return false;
  if (method !== "write" && method !== "read" && method !== "any" && method !== facts.method) return false;
  const eq = (want: string | undefined, got: string | null) =>
    want === undefined || (got !== null && want.toLowerCase() === got.toLowerCase());
  return (
    eq(rule.resourceType, facts.resourceType) && eq(rule.name, facts.name) && eq(rule.action, facts.action)
  );
}

function checkRule(rule: FaultRule): string[] {
  const problems: string[] = [];
  const effects = [
    rule.status !== undefined,
    rule.failOperation === true,
    rule.delayMs !== undefined,
    rule.hang === true,
  ].filter(Boolean);
  if (effects.length !== 1) problems.push("give exactly one of status, failOperation, delayMs, hang");
  if (rule.polls && (rule.failOperation || rule.delayMs !== undefined)) {
    problems.push("a rule for polls can only answer with a status or hang");
  }
  if (
    rule.status !== undefined &&
    (!Number.isInteger(rule.status) || rule.status < 400 || rule.status > 599)
  ) {
    problems.push(`status must be 400..599, got ${rule.status}`);
  }
  if (rule.probability !== undefined && !(rule.probability >= 0 && rule.probability <= 1)) {
    problems.push(`probability must be 0..1, got ${rule.probability}`);
  }
  if (rule.count !== undefined && !(Number.isInteger(rule.count) && rule.count >= 0)) {
    problems.push(`count must be a whole number >= 0, got ${rule.count}`);
  }
  if (rule.delayMs !== undefined && !(rule.delayMs >= 0))
    problems.push(`delayMs must be >= 0, got ${rule.delayMs}`);
  if (rule.retryAfterMs !== undefined && !(rule.retryAfterMs >= 0)) {
    problems.push(`retryAfterMs must be >= 0, got ${rule.retryAfterMs}`);
  }
  return problems;
}

/** A small seeded PRNG (mulberry32): repeatable fault patterns, no dependency. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
