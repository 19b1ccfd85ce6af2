/**
 * The Azure provider against the emulator, for tests and the benchmark: an emulator on a free
 * port (its CA trusted by the provider's clients) and an AzureProvider aimed at it with a static
 * test token, fast SDK retry delays and the emulator's guests booting (or not).
 */
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { type RunningEmulator, type StartOptions, startEmulator } from "@nbfleet/azure-emulator";
import type { ArtifactInfo } from "@nbfleet/controller";
import { AzureProvider, type AzureProviderOptions } from "@nbfleet/controller";
import { chooseCredential } from "@nbfleet/controller";
import { makeDataDir } from "./data-dir.js";

export const TEST_SUBSCRIPTION = "00000000-0000-4000-8000-00000000f1ee";

/** Emulator operation times short enough for tests (the SDK still polls as Azure tells it). */
export const FAST_DURATIONS = { network: 20, compute: 100, power: 50, delete: 20 };

export async function startTestEmulator(options: Partial<StartOptions> = {}): Promise<RunningEmulator> {
  const dataDir = options.dataDir ?? makeDataDir("nbf-azure-emu-", 0o700);
  return startEmulator({ guests: "none", durations: FAST_DURATIONS, ...options, dataDir });
}

/** An artifact record for tests that never boot a guest (nothing downloads it). */
export const UNUSED_ARTIFACT: ArtifactInfo = {
  file: "/nonexistent",
  sha256: "0".repeat(64),
  bytes: 0,
  version: "0.0.0",
};

export function emulatorProvider(
  emulator: Pick<RunningEmulator, "endpoint" | "caPem">,
  overrides: Partial<AzureProviderOptions> = {},
): AzureProvider {
  return new AzureProvider({
    subscriptionId: TEST_SUBSCRIPTION,
    location: "westeurope",
    resourceGroup: "nbfleet-test",
    artifact: UNUSED_ARTIFACT,
    credential: chooseCredential({ endpoint: emulator.endpoint }),
    endpoint: emulator.endpoint,
    caPem: emulator.caPem,
    retry: { retryDelayInMs: 20, maxRetryDelayInMs: 200 },
    ...overrides,
  });
}
