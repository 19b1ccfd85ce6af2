/**
 * Vitest global setup: a place for the run's one Chromium. Nothing is launched here — the first
 * test that asks for a browser starts it (browser.ts), so runs without browser tests pay
 * nothing; teardown stops it.
 */
import { runServerSetup } from "./run-shared-server.js";

export const { setup, teardown } = runServerSetup({
  prefix: "nbf-chromium-",
  dir: "browserDir",
  owner: "browserOwner",
});

declare module "vitest" {
  export interface ProvidedContext {
    browserDir: string;
    browserOwner: number;
  }
}
