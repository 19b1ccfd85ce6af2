/**
 * The run's one pebble, shared by the ACME tests that neither stop it nor need options of their
 * own (short-lived certificates, alwaysValid — those keep `startPebble()`): the first caller
 * starts it as a process of its own (pebble-server-process.ts; a lock directory makes sure only
 * one does), later callers — in this file or the next — use the same one. The global setup
 * (pebble-global-setup.ts) stops it at the end of the run.
 *
 * Its challenge ports are shared too: e2e files run one at a time (fileParallelism: false), and
 * a test answers challenges on `httpPort`/`tlsPort` only while its own issuance runs. Names are
 * added to its DNS, never removed: use names of the test's own (`nb1.<file>.test`).
 */
import { inject } from "vitest";
import { runServerEndpoint } from "./run-shared-server.js";

const SERVER_SCRIPT = new URL("./pebble-server-process.ts", import.meta.url).pathname;
const START_TIMEOUT_MS = 60_000;

/** What pebble-server-process.ts writes to `<dir>/pebble.json`. */
export interface SharedPebbleEndpoint {
  directoryUrl: string;
  caPem: string;
  caFile: string;
  httpPort: number;
  tlsPort: number;
  /** The test DNS pebble asks (`127.0.0.1:<port>`). */
  dnsAddress: string;
  /** The server process's control endpoint (loopback HTTP). */
  controlUrl: string;
}

export interface SharedPebble {
  /** The ACME directory URL (https, served with `caPem`'s certificate). */
  readonly directoryUrl: string;
  /** The CA of pebble's own TLS: what a client trusts to reach it. */
  readonly caPem: string;
  /** A file holding `caPem`, for settings that take a path. */
  readonly caFile: string;
  readonly httpPort: number;
  readonly tlsPort: number;
  /** The test DNS pebble asks (`127.0.0.1:<port>`). */
  readonly dnsAddress: string;
  /** Makes the test DNS answer 127.0.0.1 for `names` from now on. */
  addNames(...names: string[]): Promise<void>;
  /** The root that signs issued certificates (one for the run). */
  rootPem(): Promise<string>;
  /** The DNS questions seen so far, as `<TYPE> <name>`. */
  dnsQueries(): Promise<string[]>;
  /** pebble's output so far (for a failing test's message). */
  log(): Promise<string>;
}

let started: Promise<SharedPebble> | undefined;

/** The run's pebble (started on first use), with `names` added to its DNS. */
export async function sharedPebble(...names: string[]): Promise<SharedPebble> {
  started ??= connect().catch((error: Error) => {
    started = undefined;
    throw error;
  });
  const pebble = await started;
  await pebble.addNames(...names);
  return pebble;
}

async function connect(): Promise<SharedPebble> {
  const endpoint: SharedPebbleEndpoint = JSON.parse(await endpointText());
  const control = async (method: string, route: string, body?: string): Promise<string> => {
    const response = await fetch(`${endpoint.controlUrl}${route}`, { method, body });
    const text = await response.text();
    if (!response.ok) throw new Error(`shared pebble: ${method} ${route} gave ${response.status}: ${text}`);
    return text;
  };
  return {
    directoryUrl: endpoint.directoryUrl,
    caPem: endpoint.caPem,
    caFile: endpoint.caFile,
    httpPort: endpoint.httpPort,
    tlsPort: endpoint.tlsPort,
    dnsAddress: endpoint.dnsAddress,
    async addNames(...names) {
      for (const name of names) await control("POST", "/dns", name);
    },
    rootPem: () => control("GET", "/root"),
    dnsQueries: async () => (await control("GET", "/dns/queries")).split("\n").filter(Boolean),
    log: () => control("GET", "/log"),
  };
}

async function endpointText(): Promise<string> {
  const dir = inject("pebbleDir");
  if (!dir) throw new Error("no pebbleDir: list packages/testkit/src/pebble-global-setup.ts in globalSetup");
  return runServerEndpoint({
    dir,
    owner: inject("pebbleOwner"),
    script: SERVER_SCRIPT,
    endpointFile: "pebble.json",
    what: "the shared pebble",
    timeoutMs: START_TIMEOUT_MS,
  });
}

declare module "vitest" {
  export interface ProvidedContext {
    pebbleDir: string;
    pebbleOwner: number;
  }
}
