/**
 * A real controller in this process for the agent bench, set up the way guests meet one: HTTPS
 * with a certificate the agent pins by its SHA-256 (what a bootstrap carries), the default
 * report and ping intervals, and a hand-over provider whose "machine" is the agent the bench
 * starts itself with the bootstrap token the controller made for it. Only the API is used, via
 * `inject` (no socket of the bench's own competes with the agent's link).
 */
import { X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import path from "node:path";
import { type NbfleetApp, buildServer, defaultSettings, listen } from "@nbfleet/controller";
import { HandOverProvider } from "@nbfleet/testkit/hand-over-provider";
import { selfSignedPair } from "@nbfleet/testkit/test-ca";

export interface TlsController {
  app: NbfleetApp;
  url: string;
  /** Uppercase colon hex, as `--controller-fingerprint` takes it. */
  fingerprint: string;
  provider: HandOverProvider;
  reportIntervalSec: number;
  call<T>(method: "GET" | "POST" | "DELETE", url: string, body?: unknown): Promise<T>;
  /** The sum of a Prometheus series on /metrics, over the lines whose labels contain `labels`. */
  metric(name: string, labels?: string): Promise<number>;
  close(): Promise<void>;
}

export async function startTlsController(dataDir: string): Promise<TlsController> {
  const pair = await selfSignedPair(dataDir, "controller");
  const settings = {
    ...defaultSettings(),
    dataDir: path.join(dataDir, "controller"),
    listen: "127.0.0.1:0",
    logLevel: "silent" as const,
    tlsCert: pair.cert,
    tlsKey: pair.key,
  };
  const provider = new HandOverProvider();
  const app = await buildServer(settings, { provider });
  const url = await listen(app);
  const token = app.nbfleet.adminToken.token;
  const call = async <T>(method: "GET" | "POST" | "DELETE", url: string, body?: unknown): Promise<T> => {
    const response = await app.inject({
      method,
      url,
      headers: { authorization: `Bearer ${token}` },
      ...(body === undefined ? {} : { payload: body as Record<string, unknown> }),
    });
    if (response.statusCode >= 300)
      throw new Error(`${method} ${url}: ${response.statusCode} ${response.body}`);
    return response.json() as T;
  };
  return {
    app,
    url,
    fingerprint: new X509Certificate(await readFile(pair.cert)).fingerprint256.toUpperCase(),
    provider,
    reportIntervalSec: settings.reportIntervalSec,
    call,
    async metric(name, labels = "") {
      const text = (await app.inject({ method: "GET", url: "/metrics" })).body;
      return text
        .split("\n")
        .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
        .filter((line) => line.includes(labels))
        .reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
    },
    close: () => app.close(),
  };
}
