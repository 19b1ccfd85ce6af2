/**
 * Resource Manager request paths → what they address. ARM paths are case-insensitive in their
 * keywords and names; the names keep the caller's casing for display.
 *
 *   /subscriptions/{s}/resourcegroups[/{rg}]
 *   /subscriptions/{s}/resourcegroups/{rg}/resources                          generic list
 *   /subscriptions/{s}[/resourcegroups/{rg}]/providers/{ns}/{type}            list
 *   /subscriptions/{s}/resourcegroups/{rg}/providers/{ns}/{type}/{name}[/{sub-type}[/{sub-name}]]
 *   /subscriptions/{s}/providers/{ns}/locations/{loc}/operations/{id}        Azure-AsyncOperation
 *   /subscriptions/{s}/providers/{ns}/locations/{loc}/operationResults/{id}  Location
 */
export type ArmPath =
  | { kind: "groups"; subscription: string }
  | { kind: "group"; subscription: string; resourceGroup: string }
  | { kind: "groupResources"; subscription: string; resourceGroup: string }
  | { kind: "list"; subscription: string; resourceGroup: string | null; type: string }
  | {
      kind: "resource";
      subscription: string;
      resourceGroup: string;
      type: string;
      name: string;
      /** A child type and, when given, its name (`subnets/default`), or an action (`start`). */
      rest: string[];
    }
  | {
      kind: "operation";
      subscription: string;
      namespace: string;
      location: string;
      id: string;
      result: boolean;
    };

export function parseArmPath(pathname: string): ArmPath | null {
  const parts = pathname
    .split("/")
    .filter(Boolean)
    .map((part) => decodeURIComponent(part));
  const lower = parts.map((part) => part.toLowerCase());
  if (lower[0] !== "subscriptions" || !parts[1]) return null;
  const subscription = parts[1];
  if (lower.length === 2) return null;
  if (lower[2] === "providers") {
    const namespace = parts[3];
    if (!namespace) return null;
    if (
      lower[4] === "locations" &&
      parts[5] &&
      (lower[6] === "operations" || lower[6] === "operationresults")
    ) {
      const id = parts[7];
      if (!id || parts.length !== 8) return null;
      return {
        kind: "operation",
        subscription,
        namespace,
        location: parts[5],
        id,
        result: lower[6] === "operationresults",
      };
    }
    if (parts.length === 5)
      return { kind: "list", subscription, resourceGroup: null, type: `${namespace}/${parts[4]}` };
    return null;
  }
  if (lower[2] !== "resourcegroups") return null;
  if (parts.length === 3) return { kind: "groups", subscription };
  const resourceGroup = parts[3]!;
  if (parts.length === 4) return { kind: "group", subscription, resourceGroup };
  if (lower[4] === "resources" && parts.length === 5)
    return { kind: "groupResources", subscription, resourceGroup };
  if (lower[4] !== "providers" || !parts[5] || !parts[6]) return null;
  const type = `${parts[5]}/${parts[6]}`;
  if (parts.length === 7) return { kind: "list", subscription, resourceGroup, type };
  if (parts.length > 10) return null;
  return { kind: "resource", subscription, resourceGroup, type, name: parts[7]!, rest: parts.slice(8) };
}

export function groupId(subscription: string, resourceGroup: string): string {
  return `/subscriptions/${subscription}/resourceGroups/${resourceGroup}`;
}

export function resourceId(subscription: string, resourceGroup: string, type: string, name: string): string {
  return `${groupId(subscription, resourceGroup)}/providers/${type}/${name}`;
}

/** The parts of a resource id (`/subscriptions/…/providers/Ns/type/name[/child/name]`), or null. */
export function parseResourceId(id: string): {
  subscription: string;
  resourceGroup: string;
  type: string;
  name: string;
  child?: { type: string; name: string };
} | null {
  const parsed = parseArmPath(id);
  if (parsed?.kind !== "resource") return null;
  if (parsed.rest.length === 0) return { ...pick(parsed) };
  if (parsed.rest.length === 2)
    return { ...pick(parsed), child: { type: parsed.rest[0]!, name: parsed.rest[1]! } };
  return null;
}

function pick(p: { subscription: string; resourceGroup: string; type: string; name: string }) {
  return { subscription: p.subscription, resourceGroup: p.resourceGroup, type: p.type, name: p.name };
}

export const sameId = (a: string | undefined, b: string | undefined): boolean =>
  a !== undefined && b !== undefined && a.toLowerCase() === b.toLowerCase();
