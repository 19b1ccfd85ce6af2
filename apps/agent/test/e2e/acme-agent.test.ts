/**
 * `certificate.mode: "acme"` in a running agent, against Debian's Jupyter and pebble (45 s
 * certificates, validation on): the agent replaces its self-signed certificate by itself, renews
 * before expiry while a client polling `/api` every 100 ms (trusting only pebble's root) sees no
 * failure beyond the notebook's restarts; with pebble stopped the `tls` check warns with ACME's
 * error while the current certificate keeps being served, and once pebble is back the agent
 * succeeds by itself.
 */
import { rmSync } from "node:fs";
import { request } from "node:https";
import {
  type RunningAgent,
  agentCli,
  agentJson,
  startAgent,
  stopAgent,
} from "@nbfleet/testkit/agent-process";
import { makeDataDir } from "@nbfleet/testkit/data-dir";
import { type Pebble, startPebble } from "@nbfleet/testkit/pebble";
import { freePort } from "@nbfleet/testkit/ports";
import { waitFor } from "@nbfleet/testkit/wait";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveSettings } from "../../src/config/load.js";
import { dataPaths } from "../../src/config/paths.js";
import { DEFAULT_SETTINGS } from "../../src/config/settings.js";

const NAME = "agent.acme.test";
const LIFETIME_SEC = 45;
/** The longest wait between two attempts once a certificate has expired (renewal-schedule.ts). */
const RETRY_AFTER_EXPIRY_MS = 60_000;
let pebble: Pebble;
let agent: RunningAgent | undefined;
let dataDir: string;
let port: number;

interface Status {
  notebook: {
    pid: number | null;
    certificate: { fingerprintSha256: string; selfSigned: boolean; notAfter: string } | null;
  };
  health: {
    checks: Array<{ name: string; status: string; message: string; data?: Record<string, unknown> }>;
  };
}
const status = () => agentJson<Status>(["status", "--data-dir", dataDir]);
const acmeEvents = async () =>
  (await agentJson<Array<{ kind: string; message: string }>>(["events", "--data-dir", dataDir])).filter((e) =>
    e.kind.startsWith("certificate.acme"),
  );

beforeAll(async () => {
  pebble = await startPebble({ names: [NAME], certificateValiditySec: LIFETIME_SEC });
  dataDir = makeDataDir("nbf-acme-agent-");
  port = await freePort();
  await saveSettings(dataPaths(dataDir), {
    ...DEFAULT_SETTINGS,
    reportIntervalSec: 1,
    deepCheckIntervalSec: 0,
    certificate: {
      mode: "acme",
      directoryUrl: pebble.directoryUrl,
      email: null,
      hostname: NAME,
      caFile: pebble.caFile,
      challenge: "http-01",
      challengePort: pebble.httpPort,
    },
  });
  agent = await startAgent(dataDir, port, { password: "correct horse battery staple" });
});
afterAll(async () => {
  if (agent) await stopAgent(agent, "SIGINT").catch(() => undefined);
  await pebble?.remove();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

interface Poll {
  at: number;
  ok: boolean;
  error?: string;
}

function getApi(ca: string): Promise<Poll> {
  const at = Date.now();
  return new Promise((resolve) => {
    const req = request(
      { host: "127.0.0.1", port, path: "/api", servername: NAME, ca, timeout: 2000 },
      (response) => {
        response.resume();
        response.on("end", () => resolve({ at, ok: response.statusCode === 200 }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", (error: NodeJS.ErrnoException) =>
      resolve({ at, ok: false, error: error.code ?? error.message }),
    );
    req.end();
  });
}

/** Failed polls grouped into outages (a gap of a successful poll ends one). */
function outages(polls: Poll[]): Array<{ from: number; to: number; count: number }> {
  const runs: Array<{ from: number; to: number; count: number }> = [];
  let open: { from: number; to: number; count: number } | null = null;
  for (const poll of polls) {
    if (poll.ok) {
      open = null;
      continue;
    }
    if (!open) {
      open = { from: poll.at, to: poll.at, count: 0 };
      runs.push(open);
    }
    open.to = poll.at;
    open.count += 1;
  }
  return runs;
}

describe("an agent in ACME mode", () => {
  it("gets its certificate and renews it by itself; a client sees no failure and the notebook keeps running", async () => {
    const first = await waitFor("the first ACME certificate served", async () => {
      const s = await status();
      const cert = s.notebook.certificate;
      return cert && !cert.selfSigned ? cert : undefined;
    });
    const root = await pebble.rootPem();
    await waitFor("the notebook answering with the ACME certificate", async () => (await getApi(root)).ok);
    const pidBefore = (await status()).notebook.pid;

    const polls: Poll[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        polls.push(await getApi(root));
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    let renewed: Status["notebook"]["certificate"];
    try {
      renewed = await waitFor(
        "a renewal",
        async () => {
          const s = await status();
          const cert = s.notebook.certificate;
          return cert && cert.fingerprintSha256 !== first.fingerprintSha256 ? cert : undefined;
        },
        LIFETIME_SEC * 1000,
      );
      await waitFor("the renewed certificate served", async () => (await getApi(root)).ok);
    } finally {
      polling = false;
      await poller;
    }
    expect(Date.now()).toBeLessThan(Date.parse(first.notAfter));
    expect(renewed?.selfSigned).toBe(false);
    // Jupyter's Tornado loads its pair per connection: the renewal is served without a restart
    // (the agent restarts only a server that does not serve the new pair yet), so no outage.
    const gaps = outages(polls);
    expect(gaps, JSON.stringify(gaps)).toEqual([]);
    expect((await status()).notebook.pid).toBe(pidBefore);
    expect(polls.length).toBeGreaterThan(30);
    expect((await acmeEvents()).map((e) => e.kind)).toEqual([
      "certificate.acme_issued",
      "certificate.acme_issued",
    ]);
  });

  it("with pebble stopped: the tls check warns with ACME's error, the current certificate stays; then it succeeds by itself", async () => {
    const before = (await status()).notebook.certificate!;
    const root = await pebble.rootPem();
    await pebble.stop();
    let warned: Status["health"]["checks"][number];
    try {
      warned = await waitFor(
        "the tls check warning about ACME",
        async () =>
          (await status()).health.checks.find(
            (c) => c.name === "tls" && /ACME issuance failed/.test(c.message),
          ),
        LIFETIME_SEC * 1000,
      );
      // Still serving the certificate it had, still valid and verified.
      expect((await getApi(root)).ok).toBe(true);
      expect((await status()).notebook.certificate?.fingerprintSha256).toBe(before.fingerprintSha256);
    } finally {
      await pebble.start();
    }
    expect(warned.status).toBe("warn");
    expect(warned.message).toMatch(
      /cannot reach https:\/\/127\.0\.0\.1:\d+\/dir.*ECONNREFUSED.*next attempt at/,
    );
    expect(warned.data?.acme).toMatchObject({ code: "NBF_ACME_FAILED" });
    expect((await acmeEvents()).some((e) => e.kind === "certificate.acme_failed")).toBe(true);

    const after = await waitFor(
      "a certificate from the restarted pebble",
      async () => {
        const s = await status();
        const cert = s.notebook.certificate;
        return cert && cert.fingerprintSha256 !== before.fingerprintSha256 ? s : undefined;
      },
      // On a slow run the certificate may expire while pebble is down; the agent then retries at
      // most a minute apart (30–60 s with jitter), which a wait of one lifetime (45 s) can miss.
      RETRY_AFTER_EXPIRY_MS + LIFETIME_SEC * 1000,
    );
    expect(after.notebook.certificate?.selfSigned).toBe(false);
    const newRoot = await pebble.rootPem();
    await waitFor(
      "the new certificate verifying against the new root",
      async () => (await getApi(newRoot)).ok,
    );
    await waitFor("the tls check clear of ACME failures", async () => {
      const tls = (await status()).health.checks.find((c) => c.name === "tls");
      // Its message names the issuer ("ACME certificate from …"), and a 45 s certificate warns
      // about its expiry: the failure note is what must go.
      return tls && !/ACME issuance failed/.test(tls.message) && tls;
    });
  });

  it("`certificate rotate` in ACME mode renews from the CA now; refused by a stopped CA, it keeps the certificate", async () => {
    const before = (await status()).notebook.certificate!;
    const rotated = await agentCli(["certificate", "rotate", "--data-dir", dataDir, "--json"]);
    expect(rotated.code, rotated.stderr).toBe(0);
    const after = await waitFor("the rotated certificate", async () => {
      const cert = (await status()).notebook.certificate;
      return cert && cert.fingerprintSha256 !== before.fingerprintSha256 ? cert : undefined;
    });
    expect(after.selfSigned).toBe(false);

    await pebble.stop();
    try {
      const refused = await agentCli(["certificate", "rotate", "--data-dir", dataDir, "--json"]);
      expect(refused.code).not.toBe(0);
      expect(`${refused.stdout}${refused.stderr}`).toMatch(/NBF_ACME_FAILED/);
      expect((await status()).notebook.certificate?.fingerprintSha256).toBe(after.fingerprintSha256);
    } finally {
      await pebble.start();
    }
  });
});
