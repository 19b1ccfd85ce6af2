import type { NetworkSecurityGroup, SecurityRule } from "@azure/arm-network";
/**
 * What a fleet shares, created once and reused: the resource group, one network security group
 * that admits only the public notebook port (and SSH only when asked for) from the configured
 * source ranges, and one virtual network with one subnet behind that NSG. `ensure()` reads
 * first and writes only what is missing or different, so a running fleet costs no writes here.
 * TCP 80 for ACME's HTTP-01 is admitted only while a machine of the fleet answers it
 * (`admitAcmeHttp` / `withdrawAcmeHttp`, one at a time); `ensure()` keeps that rule as it finds it.
 */
import type { FleetTeardownReport } from "@nbfleet/shared";
import { ACME_HTTP_RULE, acmeHttpRule } from "./acme.js";
import type { AzureClients } from "./clients.js";
import { isNotFound } from "./failures.js";
import { inboundRule } from "./security-rule.js";

export const FLEET_TAG = "nbfleet-fleet";
export const VM_TAG = "nbfleet-vm";

export interface FleetNetworkSettings {
  resourceGroup: string;
  location: string;
  fleet: string;
  publicPort: number;
  /** Sources allowed to reach the notebook port (`*`, `Internet`, CIDRs). */
  notebookSourceRanges: string[];
  /** Sources allowed to reach SSH (22); null = no SSH rule. */
  sshSourceRanges: string[] | null;
  addressSpace: string;
  subnetPrefix: string;
  /** Deadline of `ensure()` (shared by every create waiting on it), polls included. */
  operationTimeoutMs: number;
}

export interface FleetNetworkNames {
  nsg: string;
  vnet: string;
  subnet: string;
}

export type TeardownReport = Omit<FleetTeardownReport, "provider">;

export class FleetNetwork {
  readonly names: FleetNetworkNames;
  private ready: Promise<string> | null = null;
  /** NSG changes for ACME, one after another (each reads the NSG, then writes it whole). */
  private acmeChanges: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly clients: () => AzureClients,
    private readonly settings: FleetNetworkSettings,
  ) {
    this.names = { nsg: `${settings.fleet}-nsg`, vnet: `${settings.fleet}-vnet`, subnet: "notebooks" };
  }

  get tags(): Record<string, string> {
    return { [FLEET_TAG]: this.settings.fleet };
  }

  /** The subnet id new NICs go into; creates what is missing (once per provider, retried after a failure). */
  ensure(): Promise<string> {
    this.ready ??= this.create(AbortSignal.timeout(this.settings.operationTimeoutMs)).catch((error) => {
      this.ready = null;
      throw error;
    });
    return this.ready;
  }

  private async create(signal: AbortSignal): Promise<string> {
    const { resources, network } = this.clients();
    const { resourceGroup: rg, location } = this.settings;
    const call = { abortSignal: signal };
    const exists = await resources.resourceGroups.checkExistence(rg, call);
    if (!exists.body) await resources.resourceGroups.createOrUpdate(rg, { location, tags: this.tags }, call);

    const nsg = await network.networkSecurityGroups.get(rg, this.names.nsg, call).catch(notFoundAsUndefined);
    const wanted = this.securityRules(acmePortOf(nsg));
    const nsgId = sameRules(nsg, wanted)
      ? nsg!.id!
      : (
          await network.networkSecurityGroups.beginCreateOrUpdateAndWait(
            rg,
            this.names.nsg,
            { location, tags: this.tags, securityRules: wanted },
            call,
          )
        ).id!;

    const vnet = await network.virtualNetworks.get(rg, this.names.vnet, call).catch(notFoundAsUndefined);
    const subnet = vnet?.subnets?.find((s) => s.name === this.names.subnet);
    if (subnet?.id && subnet.networkSecurityGroup?.id?.toLowerCase() === nsgId.toLowerCase())
      return subnet.id;
    const created = await network.virtualNetworks.beginCreateOrUpdateAndWait(
      rg,
      this.names.vnet,
      {
        location,
        tags: this.tags,
        addressSpace: { addressPrefixes: [this.settings.addressSpace] },
        subnets: [
          {
            name: this.names.subnet,
            addressPrefix: this.settings.subnetPrefix,
            networkSecurityGroup: { id: nsgId },
          },
        ],
      },
      call,
    );
    const id = created.subnets?.find((s) => s.name === this.names.subnet)?.id;
    if (!id)
      throw new Error(`Azure created virtual network ${this.names.vnet} without subnet ${this.names.subnet}`);
    return id;
  }

  /**
   * Makes the NSG admit TCP `port` from anywhere for HTTP-01 (no write when it already does).
   * Returns whether it wrote.
   */
  admitAcmeHttp(port: number, signal: AbortSignal): Promise<boolean> {
    return this.changeAcme(port, signal);
  }

  /** Removes the HTTP-01 rule (no write when there is none). Returns whether it wrote. */
  withdrawAcmeHttp(signal: AbortSignal, stillWanted: () => Promise<boolean>): Promise<boolean> {
    return this.changeAcme(null, signal, stillWanted);
  }

  private changeAcme(
    port: number | null,
    signal: AbortSignal,
    stillWanted?: () => Promise<boolean>,
  ): Promise<boolean> {
    const change = this.acmeChanges.then(async () => {
      await this.ensure();
      const { network } = this.clients();
      const { resourceGroup: rg, location } = this.settings;
      const call = { abortSignal: signal };
      const nsg = await network.networkSecurityGroups.get(rg, this.names.nsg, call);
      if (sameRules(nsg, this.securityRules(port))) return false;
      // Asked inside the queue, so no admit can slip between the question and the removal.
      if (port === null && stillWanted && (await stillWanted())) return false;
      await network.networkSecurityGroups.beginCreateOrUpdateAndWait(
        rg,
        this.names.nsg,
        { location, tags: this.tags, securityRules: this.securityRules(port) },
        call,
      );
      return true;
    });
    this.acmeChanges = change.catch(() => undefined);
    return change;
  }

  private securityRules(acmeHttpPort: number | null): SecurityRule[] {
    return [
      inboundRule("nbfleet-notebook", 100, this.settings.publicPort, this.settings.notebookSourceRanges),
      ...(this.settings.sshSourceRanges
        ? [inboundRule("nbfleet-ssh", 110, 22, this.settings.sshSourceRanges)]
        : []),
      ...(acmeHttpPort === null ? [] : [acmeHttpRule(acmeHttpPort)]),
    ];
  }

  /**
   * Removes the shared network, then the resource group when nothing else is left in it.
   * Machines must be deleted first (their NICs hold the subnet).
   */
  async teardown(signal: AbortSignal): Promise<TeardownReport> {
    const { resources, network } = this.clients();
    const rg = this.settings.resourceGroup;
    const call = { abortSignal: signal };
    this.ready = null;
    const exists = await resources.resourceGroups.checkExistence(rg, call);
    if (!exists.body)
      return { deleted: [], resourceGroupDeleted: false, keptBecause: `resource group ${rg} does not exist` };
    await network.virtualNetworks.beginDeleteAndWait(rg, this.names.vnet, call);
    await network.networkSecurityGroups.beginDeleteAndWait(rg, this.names.nsg, call);
    const deleted = [this.names.vnet, this.names.nsg];
    const left: string[] = [];
    for await (const resource of resources.resources.listByResourceGroup(rg, call))
      left.push(`${resource.type}/${resource.name}`);
    if (left.length > 0) {
      return {
        deleted,
        resourceGroupDeleted: false,
        keptBecause: `resource group ${rg} still holds ${left.join(", ")}`,
      };
    }
    await resources.resourceGroups.beginDeleteAndWait(rg, call);
    return { deleted: [...deleted, rg], resourceGroupDeleted: true, keptBecause: null };
  }
}

function notFoundAsUndefined(error: unknown): undefined {
  if (isNotFound(error)) return undefined;
  throw error;
}

/** The port the NSG's HTTP-01 rule admits, or null when it has none. */
function acmePortOf(nsg: NetworkSecurityGroup | undefined): number | null {
  const rule = nsg?.securityRules?.find((r) => r.name === ACME_HTTP_RULE);
  const port = Number(rule?.destinationPortRange);
  return rule && Number.isInteger(port) ? port : null;
}

function sameRules(nsg: NetworkSecurityGroup | undefined, wanted: SecurityRule[]): boolean {
  if (!nsg?.id) return false;
  const key = (r: SecurityRule) =>
    JSON.stringify([
      r.name,
      r.priority,
      r.direction,
      r.access,
      r.protocol,
      r.destinationPortRange,
      r.sourceAddressPrefix ?? null,
      r.sourceAddressPrefixes?.length ? r.sourceAddressPrefixes : null,
    ]);
  const have = (nsg.securityRules ?? []).map(key).sort();
  return JSON.stringify(have) === JSON.stringify(wanted.map(key).sort());
}
