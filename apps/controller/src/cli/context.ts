/**
 * Where the CLI finds its controller and token: flags, then NBFLEET_URL / NBFLEET_TOKEN, then
 * (on the controller's own machine) the admin token `nbfleet up` wrote into the data dir.
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
  const token =
    options.token ??
    env.NBFLEET_TOKEN ??
    (await readFile(path.join(defaultDataDir(env), "admin-token"), "utf8").then(
      (t) => t.trim(),
      () => undefined,
    ));
  return new ApiClient({ url: options.url ?? defaultUrl(env), token });
}
