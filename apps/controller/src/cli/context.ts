/**
 * Where the CLI finds its controller and token: flags, then NBFLEET_URL / NBFLEET_TOKEN, then
 * (for a controller on this machine, at a loopback address) the admin token `nbfleet up` wrote
 * into the data dir.
 */
import { readFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { ApiClient } from "./client.js";

export interface GlobalOptions {
  url?: string;
  token?: string;
  json?: boolean;
}

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  return env.NBFLEET_DATA_DIR ?? path.join(os.homedir(), ".nbfleet");
}

export function defaultUrl(env: NodeJS.ProcessEnv = process.env): string {
  if (env.NBFLEET_URL) return env.NBFLEET_URL;
  const listen = env.NBFLEET_LISTEN ?? "127.0.0.1:7070";
  return `http://${listen}`;
}

export async function clientFrom(
  options: GlobalOptions,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ApiClient> {
  const url = options.url ?? defaultUrl(env);
  const token = options.token ?? env.NBFLEET_TOKEN ?? (await localAdminToken(url, env));
  return new ApiClient({ url, token });
}

/**
 * The data dir's admin token belongs to the controller on this machine: it goes only to a
 * loopback address, never to whatever other controller (or mistyped host) `--url` names.
 */
async function localAdminToken(url: string, env: NodeJS.ProcessEnv): Promise<string | undefined> {
  if (!isLoopback(url)) return undefined;
  return readFile(path.join(defaultDataDir(env), "admin-token"), "utf8").then(
    (t) => t.trim(),
    () => undefined,
  );
}

function isLoopback(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.replace(/^\[(.*)\]$/, "$1");
  } catch {
    return false;
  }
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
