/**
 * Starts a real controller for tests: a fresh data dir (or a given one, to test restarts),
 * listening on 127.0.0.1 with a free port, quiet logs, fast timers.
 */
import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import path from "node:path";
import type { ArtifactInfo } from "@nbfleet/controller";
import { type ControllerSettings, defaultSettings } from "@nbfleet/controller";
import type { Provider } from "@nbfleet/controller";
import { type BuildOptions, type NbfleetApp, buildServer, listen } from "@nbfleet/controller";
import { makeDataDir } from "./data-dir.js";
import { SimProvider } from "./sim-provider.js";

export interface TestController {
  app: NbfleetApp;
  url: string;
  adminToken: string;
  dataDir: string;
  provider: Provider;
  close(): Promise<void>;
}

export async function startTestController(
  options: {
    settings?: Partial<ControllerSettings>;
    provider?: Provider;
    listen?: boolean;
    /** An agent artifact to serve (adds the artifact routes). */
    artifact?: ArtifactInfo;
    /** Where the controller logs (instead of nowhere). */
    logger?: BuildOptions["logger"];
    /** The controller process's own clock (a replica on a machine whose time is off). */
    localClock?: BuildOptions["localClock"];
  } = {},
): Promise<TestController> {
  const dataDir = options.settings?.dataDir ?? makeDataDir("nbf-controller-");
  const databaseUrl = options.settings?.databaseUrl;
  const settings: ControllerSettings = {
    ...defaultSettings(),
    listen: "127.0.0.1:0",
    logLevel: "silent",
    stateFlushMs: 20,
    commandSweepMs: 50,
    // Replicas of one database need one release key (the cluster's, as an operator copies it):
    // test controllers on one database share a key file unless a test names one.
    ...(databaseUrl ? { releaseKeyFile: clusterKeyFile(databaseUrl) } : {}),
    ...options.settings,
    dataDir,
  };
  const provider = options.provider ?? new SimProvider();
  const app = await buildServer(settings, {
    provider,
    artifact: options.artifact,
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.localClock ? { localClock: options.localClock } : {}),
  });
  const url = options.listen === false ? "" : await listen(app);
  const adminToken = app.nbfleet.adminToken.token;
  if (!adminToken) throw new Error("test controller has no known admin token");
  return { app, url, adminToken, dataDir, provider, close: () => app.close() };
}

let keyDir: string | undefined;

/**
 * One release key file per test database, in a 0700 directory of this test file's (removed with
 * its data dirs: one shared directory in /tmp kept every run's keys, thousands of them).
 */
function clusterKeyFile(databaseUrl: string): string {
  if (!keyDir || !existsSync(keyDir)) keyDir = makeDataDir("nbf-test-release-keys-", 0o700);
  return path.join(keyDir, `${createHash("sha256").update(databaseUrl).digest("hex").slice(0, 32)}.pem`);
}
