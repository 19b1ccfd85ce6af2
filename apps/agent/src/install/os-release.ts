/**
 * Which install recipe fits this machine, from `/etc/os-release` (freedesktop.org format) and
 * Node's platform name.
 */
import { readFile } from "node:fs/promises";

export type InstallPlatform = "debian" | "opensuse" | "pip" | "windows";

/** KEY=value lines; values may be quoted and, inside double quotes, backslash-escaped. */
export function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!match) continue;
    fields[match[1]!] = unquote(match[2]!);
  }
  return fields;
}

function unquote(value: string): string {
  const quote = value[0];
  if ((quote === '"' || quote === "'") && value.length >= 2 && value.endsWith(quote)) {
    const inner = value.slice(1, -1);
    return quote === '"' ? inner.replace(/\\([$"\\`])/g, "$1") : inner;
  }
  return value;
}

function familyOf(id: string): InstallPlatform | null {
  if (id === "debian" || id === "ubuntu") return "debian";
  if (id.startsWith("opensuse") || id === "sles" || id === "suse") return "opensuse";
  return null;
}

export function detectPlatform(input: {
  osReleaseText: string | null;
  platform: NodeJS.Platform;
}): InstallPlatform {
  if (input.platform === "win32") return "windows";
  if (input.osReleaseText === null) return "pip";
  const fields = parseOsRelease(input.osReleaseText);
  const ids = [fields.ID ?? "", ...(fields.ID_LIKE ?? "").split(/\s+/)].map((id) => id.toLowerCase());
  for (const id of ids) {
    const family = familyOf(id);
    if (family) return family;
  }
  return "pip";
}

/** `/etc/os-release`, falling back to `/usr/lib/os-release` as the spec says; null when neither exists. */
export async function readOsRelease(): Promise<string | null> {
  for (const file of ["/etc/os-release", "/usr/lib/os-release"]) {
    try {
      return await readFile(file, "utf8");
    } catch {
      // try the next location
    }
  }
  return null;
}
