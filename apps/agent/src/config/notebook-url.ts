/**
 * The URL people reach the notebook at: the public URL handed over at bootstrap when there is
 * one (on Azure `https://<fqdn>/`, served through the 443 → private port redirect), else the
 * server's own address (its first hostname, or the address it binds, and its private port).
 */
import type { AgentSettings } from "./settings.js";

export function notebookUrl(
  settings: Pick<AgentSettings, "publicUrl" | "hostnames" | "ip" | "port" | "baseUrl">,
): string {
  if (settings.publicUrl) return settings.publicUrl;
  const host = settings.hostnames[0] ?? (isWildcard(settings.ip) ? "localhost" : settings.ip);
  const shown = host.includes(":") ? `[${host}]` : host;
  return `https://${shown}:${settings.port}${settings.baseUrl}`;
}

/** An address that means "every interface". */
export function isWildcard(ip: string): boolean {
  return ip === "0.0.0.0" || ip === "::" || ip === "*" || ip === "";
}
