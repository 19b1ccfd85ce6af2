/**
 * Vitest global setup: a place for the run's one pebble (ACME server). Nothing is started here —
 * the first test that asks for it starts it (shared-pebble.ts), so runs without ACME tests pay
 * nothing; teardown stops it (pebble-server-process.ts removes pebble, its DNS and its files).
 */
import { runServerSetup } from "./run-shared-server.js";

export const { setup, teardown } = runServerSetup({
  prefix: "nbf-shared-pebble-",
  dir: "pebbleDir",
  owner: "pebbleOwner",
});

declare module "vitest" {
  export interface ProvidedContext {
    pebbleDir: string;
    pebbleOwner: number;
  }
}
