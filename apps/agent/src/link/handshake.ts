/**
 * The start of every connection: the agent says hello with who it is, what it can do and its
 * whole state (never a diff); the controller welcomes it with the VM's name, its report interval
 * and, on the first connection with a bootstrap token, the credential to use from then on.
 */
import os from "node:os";
import { COMMAND_NAMES, type WelcomeMessage } from "@nbfleet/shared";
import { trustSetId } from "@nbfleet/shared/certificate-pin";
import WebSocket from "ws";
import type { AgentCore } from "../core.js";
import type { PinnedKeyRecord } from "../tls/pinned-connection.js";
import { agentVersion } from "../version.js";
import type { Connection } from "./connection.js";
import type { LinkLog } from "./log.js";
import type { LinkSecrets } from "./secret.js";
import type { LinkStreams } from "./streams.js";

export interface HelloSource {
  core: AgentCore;
  hostname?: string;
  capabilities?: string[];
  streams?: LinkStreams;
  tls?: { pinnedKey?: PinnedKeyRecord };
}

export function helloFrame(source: HelloSource): Record<string, unknown> {
  // The controller sends the set in effect again to an agent that says it holds another.
  const trusted = source.tls?.pinnedKey?.trusted;
  return {
    type: "hello",
    agent: {
      version: agentVersion(),
      hostname: source.hostname ?? os.hostname(),
      os: process.platform,
      arch: process.arch,
    },
    capabilities: source.capabilities ?? [...COMMAND_NAMES, ...(source.streams?.capabilities ?? [])],
    ...(trusted ? { controllerTrust: trustSetId(trusted) } : {}),
    state: source.core.state(),
  };
}

/**
 * Takes a welcome: stores an issued credential first, then marks the connection welcomed.
 * False when there is nothing more to do (a second welcome, or the connection closed meanwhile).
 */
export async function acceptWelcome(
  connection: Connection,
  welcome: WelcomeMessage,
  secrets: LinkSecrets,
  log: LinkLog,
): Promise<boolean> {
  if (connection.welcomed) {
    log.warn("ignored a second welcome on one connection");
    return false;
  }
  if (welcome.credential) await secrets.adopt(welcome.credential, log);
  if (connection.ws.readyState !== WebSocket.OPEN) return false;
  connection.welcomed = true;
  connection.welcomedAt = Date.now();
  connection.controllerFeatures = welcome.features ?? [];
  return true;
}
