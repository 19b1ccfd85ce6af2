/**
 * The names a certificate must cover: the host names and IPs the operator gave plus the
 * loopback names every guest is reached by, validated and written one canonical way so a
 * generated certificate and a later coverage check agree on spelling.
 */
import net from "node:net";
import { AgentError } from "../errors.js";

export const LOOPBACK_NAMES = { hostnames: ["localhost"], ips: ["127.0.0.1", "::1"] } as const;

export interface SubjectNames {
  hostnames: string[];
  ips: string[];
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

export function canonicalIp(ip: string): string | null {
  if (ip.includes("%")) return null;
  const family = net.isIP(ip);
  if (family === 4) return ip;
  if (family === 6) return new URL(`http://[${ip}]`).hostname.slice(1, -1);
  return null;
}

function canonicalHostname(name: string): string | null {
  const host = name.trim().toLowerCase().replace(/\.$/, "");
  if (host.length === 0 || host.length > 253) return null;
  return host.split(".").every((label) => LABEL.test(label)) ? host : null;
}

/**
 * Validates and completes the requested names. An IP given among the host names is moved to
 * the IPs (operators pass "the addresses of the machine" without sorting them).
 */
export function subjectNames(requested: Partial<SubjectNames>): SubjectNames {
  const hostnames = new Set<string>();
  const ips = new Set<string>();
  for (const raw of requested.hostnames ?? []) {
    const ip = canonicalIp(raw.trim());
    if (ip) {
      ips.add(ip);
      continue;
    }
    const host = canonicalHostname(raw);
    if (!host) {
      throw new AgentError(
        "NBF_INVALID_INPUT",
        `not a valid DNS host name for a certificate: ${JSON.stringify(raw)}`,
        {
          hostname: raw,
        },
      );
    }
    hostnames.add(host);
  }
  for (const raw of requested.ips ?? []) {
    const ip = canonicalIp(raw.trim());
    if (!ip) {
      throw new AgentError(
        "NBF_INVALID_INPUT",
        `not a valid IP address for a certificate: ${JSON.stringify(raw)}`,
        {
          ip: raw,
        },
      );
    }
    ips.add(ip);
  }
  for (const host of LOOPBACK_NAMES.hostnames) hostnames.add(host);
  for (const ip of LOOPBACK_NAMES.ips) ips.add(ip);
  return { hostnames: [...hostnames], ips: [...ips] };
}

/** The `DNS:`/`IP:` spelling used in `CertificateInfo.subjectAltNames`. */
export function sanEntries(names: SubjectNames): string[] {
  return [...names.hostnames.map((h) => `DNS:${h}`), ...names.ips.map((ip) => `IP:${ip}`)];
}
