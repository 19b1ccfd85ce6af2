/**
 * From `up`'s flags and environment to what the link runs with: the settings to persist in
 * DIR/agent.json (controller URLs and TLS pins, so a plain `up --data-dir DIR` after a reboot
 * reconnects) and the one-time bootstrap token, which is never persisted.
 *
 * Precedence: flags (`--controller`, repeatable), then environment (NBFLEET_CONTROLLER_URLS
 * comma-separated, or NBFLEET_CONTROLLER_URL; NBFLEET_BOOTSTRAP_TOKEN), then what was stored.
 * Pins belong to the URLs: other URLs without new pins drop the old ones. One set of pins
 * holds for every URL of a list (replicas serve the same certificate or one CA's).
 */
import { X509Certificate } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import { controllerUrlListProblems, splitControllerUrls } from "@nbfleet/shared";
import type { DataPaths } from "../config/paths.js";
import { type LinkSettings, controllerUrlsOf } from "../config/settings.js";
import { AgentError } from "../errors.js";
import { formatFingerprint } from "../tls/fingerprint.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { readGivenFile } from "../util/read-given-file.js";
import { connectUrl } from "./dial.js";

export interface LinkFlags {
  /** One URL, or several (the flag repeated) tried in turn. */
  controller?: string | string[];
  bootstrapTokenFile?: string;
  controllerCa?: string;
  controllerFingerprint?: string;
}

export interface LinkEnvironment {
  NBFLEET_CONTROLLER_URL?: string | undefined;
  NBFLEET_CONTROLLER_URLS?: string | undefined;
  NBFLEET_BOOTSTRAP_TOKEN?: string | undefined;
}

export interface LinkSetup {
  settings: LinkSettings;
  bootstrapToken?: string;
}

/** Pure part: lays new URLs and pins over the stored link settings. */
export function resolveLinkSettings(
  stored: LinkSettings,
  given: { urls?: readonly string[]; caFile?: string; fingerprintSha256?: string },
): LinkSettings {
  const urls = givenUrls(given.urls);
  const storedUrls = controllerUrlsOf(stored);
  const changedUrls = urls !== undefined && !sameUrls(urls, storedUrls);
  const { controllerUrls: _stored, ...rest } = stored;
  const list = urls ?? storedUrls;
  const next: LinkSettings = {
    ...rest,
    controllerUrl: urls !== undefined ? urls[0]! : stored.controllerUrl,
    // Written only for several, so a single-URL settings file stays what older agents read.
    ...(list.length > 1 ? { controllerUrls: list } : {}),
    caFile: given.caFile ?? (changedUrls ? null : stored.caFile),
    fingerprintSha256:
      given.fingerprintSha256 !== undefined
        ? formatFingerprint(given.fingerprintSha256)
        : changedUrls
          ? null
          : stored.fingerprintSha256,
  };
  if ((given.caFile || given.fingerprintSha256) && !next.controllerUrl) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      "--controller-ca and --controller-fingerprint need a controller URL (--controller or NBFLEET_CONTROLLER_URL)",
    );
  }
  for (const url of controllerUrlsOf(next)) {
    const target = connectUrl(url);
    if (target.protocol === "ws:" && (next.caFile || next.fingerprintSha256)) {
      throw new AgentError(
        "NBF_INVALID_INPUT",
        `a controller CA or fingerprint needs an https:// or wss:// controller URL, got ${url}`,
        { url },
      );
    }
  }
  return next;
}

/** The given URLs checked as a list (each bad one named); undefined when none were given. */
function givenUrls(given: readonly string[] | undefined): string[] | undefined {
  const urls = given?.map((url) => url.trim());
  if (!urls || urls.length === 0 || (urls.length === 1 && urls[0] === "")) return undefined;
  if (urls.length > 1) {
    const problems = controllerUrlListProblems(urls);
    if (problems.length > 0) {
      throw new AgentError("NBF_INVALID_INPUT", `invalid controller URLs: ${problems.join("; ")}`, {
        urls: problems,
      });
    }
  }
  return urls;
}

/** The same URLs in any order: a reordered list keeps its pins. */
function sameUrls(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((url) => b.includes(url));
}

/** The URLs from the flags, else from the environment; undefined when neither gives any. */
export function urlsFromFlagsOrEnv(flags: LinkFlags, env: LinkEnvironment): string[] | undefined {
  if (flags.controller !== undefined) {
    return typeof flags.controller === "string" ? [flags.controller] : flags.controller;
  }
  const one = env.NBFLEET_CONTROLLER_URL?.trim() || undefined;
  const list = env.NBFLEET_CONTROLLER_URLS?.trim() || undefined;
  if (one && list) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      "NBFLEET_CONTROLLER_URL and NBFLEET_CONTROLLER_URLS are both set; give one (the list may hold a single URL)",
    );
  }
  if (list) return splitControllerUrls(list);
  return one ? [one] : undefined;
}

/** Reads the token file, keeps a copy of the CA in DIR/state, and resolves the settings. */
export async function setupLink(
  paths: DataPaths,
  stored: LinkSettings,
  flags: LinkFlags,
  env: LinkEnvironment = process.env,
): Promise<LinkSetup> {
  const bootstrapToken = flags.bootstrapTokenFile
    ? await readToken(flags.bootstrapTokenFile)
    : env.NBFLEET_BOOTSTRAP_TOKEN?.trim() || undefined;
  let caFile: string | undefined;
  if (flags.controllerCa) {
    await copyCa(flags.controllerCa, paths.controllerCa, paths.stateDir);
    caFile = paths.controllerCa;
  }
  const urls = urlsFromFlagsOrEnv(flags, env);
  const settings = resolveLinkSettings(stored, {
    ...(urls !== undefined ? { urls } : {}),
    ...(caFile ? { caFile } : {}),
    ...(flags.controllerFingerprint ? { fingerprintSha256: flags.controllerFingerprint } : {}),
  });
  return { settings, ...(bootstrapToken ? { bootstrapToken } : {}) };
}

async function readToken(file: string): Promise<string> {
  const token = (await readGivenFile(file, "bootstrap token file")).trim();
  if (token.length === 0 || /\s/.test(token)) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      `the bootstrap token file ${file} must hold exactly one token`,
      {
        file,
      },
    );
  }
  return token;
}

async function copyCa(source: string, target: string, stateDir: string): Promise<void> {
  let pem: string;
  try {
    pem = await readFile(source, "utf8");
    new X509Certificate(pem);
  } catch (error) {
    throw new AgentError(
      "NBF_CERT_INVALID",
      `--controller-ca ${source} is not a readable PEM certificate: ${(error as Error).message}`,
      { file: source },
    );
  }
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(target, pem, { mode: 0o644 });
}
