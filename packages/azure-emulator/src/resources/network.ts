/**
 * Microsoft.Network: virtual networks (subnets inline), network security groups, public IP
 * addresses and network interfaces, with the references and in-use rules Azure enforces (a NIC
 * needs its subnet, a public IP serves one NIC, nothing in use can be deleted).
 */
import { ArmError, conflict, invalidParameter } from "../arm/errors.js";
import { sameId } from "../arm/paths.js";
import type { StoredResource } from "../arm/store.js";
import {
  type Json,
  array,
  isCidr,
  nameRule80,
  namesOf,
  object,
  oneOf,
  optionalObject,
  optionalString,
  reference,
  string,
  tags,
} from "./body.js";
import type { EmulatorCore, PutInput, TypeHandler } from "./types.js";

export const VNET = "Microsoft.Network/virtualNetworks";
export const NSG = "Microsoft.Network/networkSecurityGroups";
export const PUBLIC_IP = "Microsoft.Network/publicIPAddresses";
export const NIC = "Microsoft.Network/networkInterfaces";

function base(input: PutInput) {
  const location = string(input.body.location, "location");
  if (input.existing && input.existing.location.toLowerCase() !== location.toLowerCase()) {
    throw invalidParameter(
      `Resource ${input.name} exists in location ${input.existing.location}; it cannot be moved to ${location}.`,
      "location",
    );
  }
  return {
    id: input.id,
    name: input.name,
    type: input.type,
    subscription: input.group.subscription,
    resourceGroup: input.group.name,
    location,
    tags: tags(input.body.tags),
    extra: {},
    hidden: {},
  };
}

const networkPut = (core: EmulatorCore) => core.durations.network;

// ---- virtual networks and subnets ----------------------------------------------------------

interface Subnet {
  name: string;
  id: string;
  properties: Json;
}

function subnetsOf(vnet: StoredResource): Subnet[] {
  return (vnet.properties.subnets as Subnet[] | undefined) ?? [];
}

/** The subnet with this id (`…/virtualNetworks/v/subnets/s`) and its VNet, if both exist. */
export function findSubnet(
  core: EmulatorCore,
  id: string,
): { vnet: StoredResource; subnet: Subnet } | undefined {
  const at = id.toLowerCase().lastIndexOf("/subnets/");
  if (at < 0) return undefined;
  const vnet = core.store.get(id.slice(0, at));
  const subnet = vnet && !vnet.deleting ? subnetsOf(vnet).find((s) => sameId(s.id, id)) : undefined;
  return vnet && subnet ? { vnet, subnet } : undefined;
}

/** NIC ip configurations that sit in a subnet. */
function subnetUsers(core: EmulatorCore, subnetId: string): string[] {
  return core.store
    .list({ type: NIC })
    .flatMap((nic) => ipConfigurations(nic))
    .filter((config) => sameId((config.properties.subnet as Json | undefined)?.id as string, subnetId))
    .map((config) => config.id);
}

export const virtualNetworks: TypeHandler = {
  type: VNET,
  pendingState: "Updating",
  nameProblem: namesOf("virtual network", nameRule80),
  putDuration: networkPut,
  build(input) {
    const properties = object(input.body.properties, "properties");
    const addressSpace = object(properties.addressSpace, "properties.addressSpace");
    const prefixes = array(addressSpace.addressPrefixes, "properties.addressSpace.addressPrefixes");
    if (prefixes.length === 0 || !prefixes.every((p) => typeof p === "string" && isCidr(p))) {
      throw invalidParameter(
        "properties.addressSpace.addressPrefixes must list at least one CIDR block (e.g. 10.0.0.0/16).",
        "addressPrefixes",
      );
    }
    const subnets: Subnet[] = array(properties.subnets, "properties.subnets").map((raw, i) => {
      const subnet = object(raw, `properties.subnets[${i}]`);
      const name = string(subnet.name, `properties.subnets[${i}].name`);
      const sp = object(subnet.properties, `properties.subnets[${i}].properties`);
      const prefix = string(sp.addressPrefix, `properties.subnets[${i}].properties.addressPrefix`);
      if (!isCidr(prefix))
        throw invalidParameter(`Subnet ${name} has an invalid address prefix '${prefix}'.`, "addressPrefix");
      const nsg = optionalObject(sp.networkSecurityGroup, "networkSecurityGroup");
      const id = `${input.id}/subnets/${name}`;
      if (nsg)
        reference(input.core, nsg, `properties.subnets[${i}].properties.networkSecurityGroup`, NSG, id);
      return {
        name,
        id,
        properties: {
          addressPrefix: prefix,
          ...(nsg ? { networkSecurityGroup: { id: nsg.id } } : {}),
          provisioningState: "Succeeded",
        },
      };
    });
    const names = new Set(subnets.map((s) => s.name.toLowerCase()));
    if (names.size !== subnets.length)
      throw invalidParameter("Subnet names must be unique within a virtual network.", "subnets");
    for (const old of input.existing ? subnetsOf(input.existing) : []) {
      if (!names.has(old.name.toLowerCase()) && subnetUsers(input.core, old.id).length > 0) {
        throw new ArmError(
          400,
          "InUseSubnetCannotBeDeleted",
          `Subnet ${old.name} is in use by ${subnetUsers(input.core, old.id)[0]} and cannot be deleted.`,
        );
      }
    }
    return {
      ...base(input),
      properties: { addressSpace: { addressPrefixes: prefixes }, subnets, resourceGuid: crypto.randomUUID() },
    };
  },
  inUse(core, vnet) {
    for (const subnet of subnetsOf(vnet)) {
      const users = subnetUsers(core, subnet.id);
      if (users.length > 0) {
        return new ArmError(
          400,
          "InUseSubnetCannotBeDeleted",
          `Subnet ${subnet.name} is in use by ${users[0]} and cannot be deleted. In order to delete the subnet, delete all the resources within the subnet.`,
        );
      }
    }
    return null;
  },
  render(core, vnet) {
    return {
      subnets: subnetsOf(vnet).map((subnet) => renderSubnet(core, subnet)),
    };
  },
};

export function renderSubnet(core: EmulatorCore, subnet: Subnet): Json {
  const users = subnetUsers(core, subnet.id);
  return {
    name: subnet.name,
    id: subnet.id,
    type: `${VNET}/subnets`,
    properties: {
      ...subnet.properties,
      ...(users.length > 0 ? { ipConfigurations: users.map((id) => ({ id })) } : {}),
    },
  };
}

// ---- network security groups ---------------------------------------------------------------

const PROTOCOLS = ["Tcp", "Udp", "Icmp", "Esp", "Ah", "*"] as const;

export const networkSecurityGroups: TypeHandler = {
  type: NSG,
  pendingState: "Updating",
  nameProblem: namesOf("network security group", nameRule80),
  putDuration: networkPut,
  build(input) {
    const properties = object(input.body.properties ?? {}, "properties");
    const seen = new Map<string, string>();
    const securityRules = array(properties.securityRules, "properties.securityRules").map((raw, i) => {
      const field = `properties.securityRules[${i}]`;
      const rule = object(raw, field);
      const name = string(rule.name, `${field}.name`);
      const rp = object(rule.properties, `${field}.properties`);
      const priority = rp.priority;
      if (typeof priority !== "number" || !Number.isInteger(priority) || priority < 100 || priority > 4096) {
        throw invalidParameter(
          `Security rule ${name} has an invalid priority ${String(priority)}: 100..4096 is allowed.`,
          "priority",
        );
      }
      const direction = oneOf(rp.direction, `${field}.properties.direction`, [
        "Inbound",
        "Outbound",
      ] as const);
      const key = `${direction}/${priority}`;
      if (seen.has(key)) {
        throw new ArmError(
          400,
          "SecurityRuleConflict",
          `Security rule ${name} conflicts with rule ${seen.get(key)}: rules cannot have the same priority and direction.`,
        );
      }
      seen.set(key, name);
      const sources = rp.sourceAddressPrefix ?? rp.sourceAddressPrefixes;
      const ports = rp.destinationPortRange ?? rp.destinationPortRanges;
      if (sources === undefined || ports === undefined) {
        throw invalidParameter(
          `Security rule ${name} needs a source address prefix and a destination port range.`,
          field,
        );
      }
      return {
        name,
        id: `${input.id}/securityRules/${name}`,
        properties: {
          ...rp,
          protocol: oneOf(rp.protocol, `${field}.properties.protocol`, PROTOCOLS),
          access: oneOf(rp.access, `${field}.properties.access`, ["Allow", "Deny"] as const),
          direction,
          priority,
          provisioningState: "Succeeded",
        },
      };
    });
    return { ...base(input), properties: { securityRules, resourceGuid: crypto.randomUUID() } };
  },
  inUse(core, nsg) {
    const subnet = core.store
      .list({ type: VNET })
      .flatMap((vnet) => subnetsOf(vnet))
      .find((s) => sameId((s.properties.networkSecurityGroup as Json | undefined)?.id as string, nsg.id));
    const nic = core.store
      .list({ type: NIC })
      .find((n) => sameId((n.properties.networkSecurityGroup as Json | undefined)?.id as string, nsg.id));
    const user = subnet?.id ?? nic?.id;
    return user
      ? new ArmError(
          400,
          "InUseNetworkSecurityGroupCannotBeDeleted",
          `Network security group ${nsg.id} cannot be deleted because it is in use by ${user}.`,
        )
      : null;
  },
  render(_core, nsg) {
    return {
      defaultSecurityRules: DEFAULT_RULES.map(([name, direction, priority, source, destination, access]) => ({
        name,
        id: `${nsg.id}/defaultSecurityRules/${name}`,
        properties: {
          protocol: "*",
          sourcePortRange: "*",
          destinationPortRange: "*",
          sourceAddressPrefix: source,
          destinationAddressPrefix: destination,
          access,
          priority,
          direction,
          provisioningState: "Succeeded",
        },
      })),
    };
  },
};

const DEFAULT_RULES: Array<[string, string, number, string, string, string]> = [
  ["AllowVnetInBound", "Inbound", 65000, "VirtualNetwork", "VirtualNetwork", "Allow"],
  ["AllowAzureLoadBalancerInBound", "Inbound", 65001, "AzureLoadBalancer", "*", "Allow"],
  ["DenyAllInBound", "Inbound", 65500, "*", "*", "Deny"],
  ["AllowVnetOutBound", "Outbound", 65000, "VirtualNetwork", "VirtualNetwork", "Allow"],
  ["AllowInternetOutBound", "Outbound", 65001, "*", "Internet", "Allow"],
  ["DenyAllOutBound", "Outbound", 65500, "*", "*", "Deny"],
];

// ---- public IP addresses -------------------------------------------------------------------

const DNS_LABEL = /^[a-z][a-z0-9-]{1,61}[a-z0-9]$/;
let nextPublicAddress = 1;

function ipUser(core: EmulatorCore, ip: StoredResource): string | undefined {
  return core.store
    .list({ type: NIC })
    .flatMap((nic) => ipConfigurations(nic))
    .find((config) => sameId((config.properties.publicIPAddress as Json | undefined)?.id as string, ip.id))
    ?.id;
}

export const publicIPAddresses: TypeHandler = {
  type: PUBLIC_IP,
  pendingState: "Updating",
  nameProblem: namesOf("public IP address", nameRule80),
  putDuration: networkPut,
  build(input) {
    const properties = object(input.body.properties ?? {}, "properties");
    const sku = optionalObject(input.body.sku, "sku");
    const skuName = oneOf(sku?.name, "sku.name", ["Basic", "Standard"] as const, "Basic");
    const allocation = oneOf(
      properties.publicIPAllocationMethod,
      "properties.publicIPAllocationMethod",
      ["Static", "Dynamic"] as const,
      skuName === "Standard" ? "Static" : "Dynamic",
    );
    if (skuName === "Standard" && allocation !== "Static") {
      throw invalidParameter(
        `Standard sku publicIp ${input.id} must have AllocationMethod set to Static.`,
        "publicIPAllocationMethod",
      );
    }
    const dns = optionalObject(properties.dnsSettings, "properties.dnsSettings");
    const label = optionalString(dns?.domainNameLabel, "properties.dnsSettings.domainNameLabel");
    if (label !== undefined) {
      if (!DNS_LABEL.test(label)) {
        throw new ArmError(
          400,
          "InvalidDomainNameLabel",
          `The domain name label ${label} is invalid. It must conform to the following regular expression: ^[a-z][a-z0-9-]{1,61}[a-z0-9]$.`,
        );
      }
      const taken = input.core.store
        .list({ type: PUBLIC_IP })
        .find(
          (ip) =>
            !sameId(ip.id, input.id) &&
            ip.location.toLowerCase() === string(input.body.location, "location").toLowerCase() &&
            (ip.properties.dnsSettings as Json | undefined)?.domainNameLabel === label,
        );
      if (taken) conflictDns(label, taken.id);
    }
    const location = string(input.body.location, "location");
    return {
      ...base(input),
      extra: { sku: { name: skuName, tier: "Regional" } },
      properties: {
        publicIPAllocationMethod: allocation,
        publicIPAddressVersion: "IPv4",
        idleTimeoutInMinutes: 4,
        ...(properties.deleteOption !== undefined
          ? {
              deleteOption: oneOf(properties.deleteOption, "properties.deleteOption", [
                "Delete",
                "Detach",
              ] as const),
            }
          : {}),
        ...(label !== undefined
          ? {
              dnsSettings: {
                domainNameLabel: label,
                fqdn: `${label}.${location.toLowerCase().replace(/\s+/g, "")}.cloudapp.azure.com`,
              },
            }
          : {}),
        ...(input.existing?.properties.ipAddress ? { ipAddress: input.existing.properties.ipAddress } : {}),
        resourceGuid: (input.existing?.properties.resourceGuid as string | undefined) ?? crypto.randomUUID(),
      },
    };
  },
  provision(_core, ip) {
    // Addresses from TEST-NET-3 (RFC 5737): they look like public addresses and route nowhere.
    ip.properties.ipAddress ??= `203.0.113.${(nextPublicAddress++ % 254) + 1}`;
  },
  inUse(core, ip) {
    const user = ipUser(core, ip);
    return user
      ? new ArmError(
          400,
          "PublicIPAddressCannotBeDeleted",
          `Public IP address ${ip.id} can not be deleted since it is still allocated to resource ${user}. In order to delete the public IP, disassociate/detach the Public IP address from the resource.`,
        )
      : null;
  },
  render(core, ip) {
    const user = ipUser(core, ip);
    return user ? { ipConfiguration: { id: user } } : {};
  },
};

function conflictDns(label: string, holder: string): never {
  throw conflict(
    `DNS record ${label} is already used by another public IP (${holder}). Choose another domain name label.`,
  );
}

// ---- network interfaces --------------------------------------------------------------------

interface IpConfiguration {
  name: string;
  id: string;
  properties: Json;
}

export function ipConfigurations(nic: StoredResource): IpConfiguration[] {
  return (nic.properties.ipConfigurations as IpConfiguration[] | undefined) ?? [];
}

/** The VM a NIC is attached to, if any. */
export function nicOwner(core: EmulatorCore, nic: StoredResource): StoredResource | undefined {
  return core.store
    .list({ type: "Microsoft.Compute/virtualMachines" })
    .find((vm) =>
      ((vm.properties.networkProfile as Json | undefined)?.networkInterfaces as Json[] | undefined)?.some(
        (ref) => sameId(ref.id as string, nic.id),
      ),
    );
}

let nextPrivateHost = 4;

export const networkInterfaces: TypeHandler = {
  type: NIC,
  pendingState: "Updating",
  nameProblem: namesOf("network interface", nameRule80),
  putDuration: networkPut,
  build(input) {
    const properties = object(input.body.properties, "properties");
    const location = string(input.body.location, "location");
    const raw = array(properties.ipConfigurations, "properties.ipConfigurations");
    if (raw.length === 0)
      throw invalidParameter("A network interface needs at least one IP configuration.", "ipConfigurations");
    const previous = input.existing ? ipConfigurations(input.existing) : [];
    const configs: IpConfiguration[] = raw.map((entry, i) => {
      const field = `properties.ipConfigurations[${i}]`;
      const config = object(entry, field);
      const name = string(config.name, `${field}.name`);
      const id = `${input.id}/ipConfigurations/${name}`;
      const cp = object(config.properties, `${field}.properties`);
      const subnetRef = object(cp.subnet, `${field}.properties.subnet`);
      const subnetId = string(subnetRef.id, `${field}.properties.subnet.id`);
      const found = findSubnet(input.core, subnetId);
      if (!found) {
        throw new ArmError(
          400,
          "InvalidResourceReference",
          `Resource ${subnetId} referenced by resource ${input.id} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region.`,
        );
      }
      if (found.vnet.location.toLowerCase() !== location.toLowerCase()) {
        throw invalidParameter(
          `Subnet ${subnetId} is in location ${found.vnet.location}; network interface ${input.name} is in ${location}.`,
          "location",
        );
      }
      const publicRef = optionalObject(cp.publicIPAddress, `${field}.properties.publicIPAddress`);
      if (publicRef) {
        const ip = reference(
          input.core,
          publicRef,
          `${field}.properties.publicIPAddress`,
          PUBLIC_IP,
          input.id,
        );
        const user = ipUser(input.core, ip);
        if (user && !user.toLowerCase().startsWith(`${input.id.toLowerCase()}/`)) {
          throw new ArmError(
            400,
            "PublicIPAddressInUse",
            `Resource ${ip.id} is already in use by ${user}; a public IP address serves one IP configuration.`,
          );
        }
      }
      const kept = previous.find((p) => p.name.toLowerCase() === name.toLowerCase());
      return {
        name,
        id,
        properties: {
          subnet: { id: found.subnet.id },
          ...(publicRef ? { publicIPAddress: { id: publicRef.id } } : {}),
          privateIPAllocationMethod: "Dynamic",
          privateIPAddress:
            (kept?.properties.privateIPAddress as string | undefined) ?? privateAddress(found.subnet),
          primary: i === 0,
          provisioningState: "Succeeded",
        },
      };
    });
    const nsgRef = optionalObject(properties.networkSecurityGroup, "properties.networkSecurityGroup");
    if (nsgRef) reference(input.core, nsgRef, "properties.networkSecurityGroup", NSG, input.id);
    return {
      ...base(input),
      properties: {
        ipConfigurations: configs,
        ...(nsgRef ? { networkSecurityGroup: { id: nsgRef.id } } : {}),
        enableAcceleratedNetworking: properties.enableAcceleratedNetworking === true,
        resourceGuid: (input.existing?.properties.resourceGuid as string | undefined) ?? crypto.randomUUID(),
      },
    };
  },
  inUse(core, nic) {
    const vm = nicOwner(core, nic);
    return vm && !vm.deleting
      ? new ArmError(
          400,
          "NicInUse",
          `Network Interface ${nic.id} is used by existing resource ${vm.id}. In order to delete the network interface, it must be dissociated from the resource.`,
        )
      : null;
  },
  render(core, nic) {
    const vm = nicOwner(core, nic);
    return vm ? { virtualMachine: { id: vm.id }, primary: true } : {};
  },
};

function privateAddress(subnet: Subnet): string {
  const prefix = String(subnet.properties.addressPrefix).split("/")[0]!.split(".");
  const host = nextPrivateHost++;
  return `${prefix[0]}.${prefix[1]}.${Number(prefix[2]) + Math.floor(host / 250)}.${host % 250}`;
}
