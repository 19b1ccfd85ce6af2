import type { SecurityRule } from "@azure/arm-network";

/** An inbound TCP allow rule of the fleet's NSG: `port` from `sources` (`*` = anywhere). */
export function inboundRule(name: string, priority: number, port: number, sources: string[]): SecurityRule {
  return {
    name,
    priority,
    direction: "Inbound",
    access: "Allow",
    protocol: "Tcp",
    sourcePortRange: "*",
    destinationAddressPrefix: "*",
    destinationPortRange: String(port),
    ...(sources.length === 1 ? { sourceAddressPrefix: sources[0] } : { sourceAddressPrefixes: sources }),
  };
}
