/**
 * What the emulator holds: resource groups and resources, keyed by lowercase id (ARM ids are
 * case-insensitive). In memory only: the emulator's fleet lives as long as its process.
 */
import { groupId } from "./paths.js";

export interface ResourceGroup {
  id: string;
  name: string;
  subscription: string;
  location: string;
  tags: Record<string, string>;
  /** Set while the group is being deleted. */
  deleting: boolean;
}

export interface StoredResource {
  id: string;
  name: string;
  /** `Microsoft.Network/publicIPAddresses`, or a child type such as `Microsoft.Compute/virtualMachines/extensions`. */
  type: string;
  subscription: string;
  resourceGroup: string;
  location: string;
  tags: Record<string, string>;
  /** Top-level fields other than the above (sku, zones, …), kept as sent. */
  extra: Record<string, unknown>;
  properties: Record<string, unknown>;
  /** What Azure never returns (customData, admin password) and emulator-side state (power state). */
  hidden: Record<string, unknown>;
  /** The id of the resource this one belongs to (a VM for its extensions). */
  parentId?: string;
  /** The operation running on this resource, if any (a second write is refused meanwhile). */
  busy: string | null;
  /** Set once a DELETE was accepted. */
  deleting: boolean;
}

export class ResourceStore {
  private readonly groups = new Map<string, ResourceGroup>();
  private readonly resources = new Map<string, StoredResource>();

  group(subscription: string, name: string): ResourceGroup | undefined {
    return this.groups.get(groupId(subscription, name).toLowerCase());
  }

  putGroup(group: ResourceGroup): void {
    this.groups.set(group.id.toLowerCase(), group);
  }

  deleteGroup(group: ResourceGroup): void {
    this.groups.delete(group.id.toLowerCase());
  }

  listGroups(subscription: string): ResourceGroup[] {
    return [...this.groups.values()].filter(
      (g) => g.subscription.toLowerCase() === subscription.toLowerCase(),
    );
  }

  get(id: string): StoredResource | undefined {
    return this.resources.get(id.toLowerCase());
  }

  put(resource: StoredResource): void {
    this.resources.set(resource.id.toLowerCase(), resource);
  }

  delete(id: string): void {
    this.resources.delete(id.toLowerCase());
  }

  /** Resources, optionally narrowed to a subscription, resource group and type (case-insensitive). */
  list(
    filter: { subscription?: string; resourceGroup?: string | null; type?: string } = {},
  ): StoredResource[] {
    const eq = (a: string, b: string | null | undefined) => b == null || a.toLowerCase() === b.toLowerCase();
    return [...this.resources.values()].filter(
      (r) =>
        eq(r.subscription, filter.subscription) &&
        eq(r.resourceGroup, filter.resourceGroup) &&
        eq(r.type, filter.type),
    );
  }

  all(): { groups: ResourceGroup[]; resources: StoredResource[] } {
    return { groups: [...this.groups.values()], resources: [...this.resources.values()] };
  }
}
