/** Vitest global setup: the CLI bundle the run's `runCli` calls start (cli-bundle.ts). */
import { buildCliBundle } from "./cli-bundle.js";

export async function setup(): Promise<void> {
  await buildCliBundle();
}
