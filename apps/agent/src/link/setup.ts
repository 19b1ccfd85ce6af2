/**
 * From `up`'s flags and environment to what the link runs with: the settings to persist in
 * DIR/agent.json (controller URL and TLS pins, so a plain `up --data-dir DIR` after a reboot
 * reconnects) and the one-time bootstrap token, which is never persisted.
 *
 * Precedence: flag, then environment (NBFLEET_CONTROLLER_URL, NBFLEET_BOOTSTRAP_TOKEN), then
 * what was stored. Pins belong to a URL: a new URL without new pins drops the old ones.
 */
import { X509Certificate } from "node:crypto";
import { mkdir, readFile } from "node:fs/promises";
import type { DataPaths } from "../config/paths.js";
import type { LinkSettings } from "../config/settings.js";
import { AgentError } from "../errors.js";
import { formatFingerprint } from "../tls/fingerprint.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { readGivenFile } from "../util/read-given-file.js";
import { connectUrl } from "./dial.js";

export interface LinkFlags {
  controller?: string;
  bootstrapTokenFile?: string;
  controllerCa?: string;
  controllerFingerprint?: string;
}

export interface LinkEnvironment {
  NBFLEET_CONTROLLER_URL?: string | undefined;
  NBFLEET_BOOTSTRAP_TOKEN?: string | undefined;
}

export interface LinkSetup {
  settings: LinkSettings;
  bootstrapToken?: string;
}

/** Pure part: lays a new URL and pins over the stored link settings. */
export function resolveLinkSettings(
  stored: LinkSettings,
  given: { url?: string; caFile?: string; fingerprintSha256?: string },
): LinkSettings {
  const url = given.url?.trim() || undefined;
  const changedUrl = url !== undefined && url !== stored.controllerUrl;
  const next: LinkSettings = {
    ...stored,
    ...(url !== undefined ? { controllerUrl: url } : {}),
    caFile: given.caFile ?? (changedUrl ? null : stored.caFile),
    fingerprintSha256:
      given.fingerprintSha256 !== undefined
        ? formatFingerprint(given.fingerprintSha256)
        : changedUrl
          ? null
          : stored.fingerprintSha256,
  };
  if ((given.caFile || given.fingerprintSha256) && !next.controllerUrl) {
    throw new AgentError(
      "NBF_INVALID_INPUT",
      "--controller-ca and --controller-fingerprint need a controller URL (--controller or NBFLEET_CONTROLLER_URL)",
    );
  }
  if (next.controllerUrl) {
    const target = connectUrl(next.controllerUrl);
    if (target.protocol === "ws:" && (next.caFile || next.fingerprintSha256)) {
      throw new AgentError(
        "NBF_INVALID_INPUT",
        `a controller CA or fingerprint needs an https:// or wss:// controller URL, got ${next.controllerUrl}`,
        { url: next.controllerUrl },
      );
    }
  }
  return next;
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
  const url = flags.controller ?? (env.NBFLEET_CONTROLLER_URL?.trim() || undefined);
  const settings = resolveLinkSettings(stored, {
    ...(url !== undefined ? { url } : {}),
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
