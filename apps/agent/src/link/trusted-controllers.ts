/**
 * The controller certificates an agent trusts after a `controller.trust`, which moves a pinned
 * fleet to a controller key it was not pinned to: DIR/state/controller-trust.json (0600, written
 * atomically), stored beside the fingerprint the agent was pinned to. While it holds a set for
 * that fingerprint, the set replaces the pin and its learned key for the link and for agent
 * downloads. A set stored under another pin (the agent was pinned again by hand) is ignored, and
 * one that cannot be read is ignored with a warning. Like the key record, it lives outside
 * agent.json, so an older agent (an upgrade rolled back) still reads its settings.
 */
import type { X509Certificate } from "node:crypto";
import { CommandParams, type CommandParamsOf, compileValidator } from "@nbfleet/shared";
import { type CertificatePin, matchPin } from "@nbfleet/shared/certificate-pin";
import { AgentError } from "../errors.js";
import { writeFileAtomic } from "../util/atomic-write.js";
import { readSmallJson } from "../util/small-json.js";

const MAX_FILE_BYTES = 8192;
const trustParams = compileValidator(CommandParams["controller.trust"], "trusted controller certificates");

export type TrustedPin = CommandParamsOf<"controller.trust">["pins"][number];

export interface TrustedSetRead {
  pins: TrustedPin[] | null;
  /** Why a set on disk was not used. */
  problem: string | null;
}

export async function readTrustedSet(file: string, pinnedTo: string): Promise<TrustedSetRead> {
  const read = await readSmallJson(file, MAX_FILE_BYTES);
  if (!read.found) return { pins: null, problem: read.problem };
  const record = read.value as { pinnedTo?: unknown; pins?: unknown } | null;
  if (typeof record !== "object" || record === null || typeof record.pinnedTo !== "string") {
    return { pins: null, problem: `${file} does not name the pin it replaces` };
  }
  const problems = trustParams.problems({ pins: record.pins });
  if (problems.length > 0) return { pins: null, problem: `${file}: ${problems.join("; ")}` };
  return { pins: record.pinnedTo === pinnedTo ? (record.pins as TrustedPin[]) : null, problem: null };
}

/**
 * Stores `pins` in place of the pin, after checking that they include the certificate the agent
 * last accepted from its controller: a set without it would lock the agent out at its next
 * connection, with nobody able to reach it to correct that.
 */
export async function storeTrustedSet(
  file: string,
  pinnedTo: string,
  pins: TrustedPin[],
  connectedThrough: X509Certificate | null,
): Promise<void> {
  if (!connectedThrough) {
    throw new AgentError(
      "NBF_TRUST_REFUSED",
      "this agent has not accepted a controller certificate since it started, so it cannot check that the new set keeps it connected",
    );
  }
  if (!pins.some((pin) => matchPin(connectedThrough, pin) !== null)) {
    throw new AgentError(
      "NBF_TRUST_REFUSED",
      `the set does not include the certificate this agent reaches its controller through (SHA-256 ${connectedThrough.fingerprint256}) or its key; storing it would lock the agent out`,
    );
  }
  const record = { pinnedTo, pins, storedAt: new Date().toISOString() };
  await writeFileAtomic(file, `${JSON.stringify(record, null, 2)}\n`, { mode: 0o600 });
}

export function describePins(pins: readonly CertificatePin[]): string {
  return pins.map((pin) => pin.certificateSha256).join(", ");
}
