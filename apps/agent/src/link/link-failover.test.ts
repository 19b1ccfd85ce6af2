import { X509Certificate } from "node:crypto";
import { createServer } from "node:net";
import { FakeController } from "@nbfleet/testkit/fake-controller";
import { FakeCore } from "@nbfleet/testkit/fake-core";
import { type LinkHarness, startLink } from "@nbfleet/testkit/link-harness";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { formatFingerprint } from "../tls/fingerprint.js";
import { type CertificatePair, generateSelfSigned } from "../tls/generate.js";

const TOKEN = "nbfb_any-token-accepted-by-both-replicas";
/** Random = 1 draws each delay at its ceiling, so one backoff step is exactly this long. */
const STEP_MS = 300;
/** Scheduling and dialing on a loaded machine; well under a second backoff step. */
const SLACK_MS = 250;

let fakes: FakeController[] = [];
let harness: LinkHarness | undefined;
let certificate: CertificatePair;
let impostor: CertificatePair;

beforeAll(async () => {
  [certificate, impostor] = await Promise.all([generateSelfSigned(), generateSelfSigned()]);
});

afterEach(async () => {
  await harness?.stop();
  harness = undefined;
  await Promise.all(fakes.map((f) => f.close()));
  fakes = [];
});

async function replica(options: Parameters<typeof FakeController.start>[0] = {}): Promise<FakeController> {
  const fake = await FakeController.start(options);
  fakes.push(fake);
  return fake;
}

/** A loopback URL where nothing listens: dials to it are refused at once. */
async function refusingUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** The agent endpoint a base URL is dialed at (http → ws, https → wss). */
const endpoint = (base: string) => `${base.replace(/^http/, "ws")}/v1/agent/connect`;
const waits = (h: LinkHarness) =>
  h.statuses.flatMap((s) => (s.status.state === "waiting" ? [s.status.retryInMs] : []));
const connectedTo = (h: LinkHarness) =>
  h.statuses.flatMap((s) => (s.status.state === "connected" ? [s.status.url] : []));

function start(urls: string[], extra: { fingerprintSha256?: string } = {}): LinkHarness {
  return startLink({
    url: urls,
    core: new FakeCore(),
    bootstrapToken: TOKEN,
    random: () => 1,
    timing: { initialBackoffMs: STEP_MS, maxBackoffMs: 10_000 },
    ...(extra.fingerprintSha256 ? { tls: { fingerprintSha256: extra.fingerprintSha256 } } : {}),
  });
}

describe("ControllerLink with several controller URLs", () => {
  it("dials the second when the first refuses connections, one backoff step later", async () => {
    const dead = await refusingUrl();
    const second = await replica();
    harness = start([dead, second.url]);
    const welcomed = await second.waitForWelcomed(1);

    const firstTry = harness.statuses.find((s) => s.status.state === "connecting")!;
    expect(firstTry.status).toMatchObject({ url: endpoint(dead) });
    expect(waits(harness)[0]).toBe(STEP_MS);
    const gap = welcomed.at - firstTry.at;
    expect(gap).toBeGreaterThanOrEqual(STEP_MS - 5);
    expect(gap).toBeLessThan(STEP_MS + SLACK_MS);
    await harness.waitForStatus((s) => s.state === "connected", "connected");
    expect(harness.link.status).toMatchObject({ state: "connected", url: endpoint(second.url) });
    await harness.log.waitFor(new RegExp(`connected to ${endpoint(second.url)} as VM vm-1`));
    expect((await harness.log.waitFor(/cannot reach the controller/)).message).toContain(endpoint(dead));
  });

  it("when the connected controller goes away, reconnects to the other within one backoff step, and back", async () => {
    const [a, b] = [await replica(), await replica()];
    harness = start([a.url, b.url]);
    await a.waitForWelcomed(1);
    await harness.waitForStatus((s) => s.state === "connected", "connected to the first");

    await a.close(); // the replica is gone: its connections dropped, its port closed
    const onB = await b.waitForWelcomed(1);
    const gap = onB.at - a.connections[0]!.closedAt!;
    expect(gap).toBeLessThan(STEP_MS + SLACK_MS);
    expect(waits(harness)).toEqual([STEP_MS]);

    // The second drops the link: the next dial goes to the first (refused now), then the second
    // again. The ceiling grew once, after both had their try: per round, not per attempt.
    b.dropCurrent();
    await b.waitForWelcomed(2);
    expect(waits(harness)).toEqual([STEP_MS, STEP_MS, 2 * STEP_MS]);
    const dialed = harness.statuses.flatMap((s) => (s.status.state === "connecting" ? [s.status.url] : []));
    expect(dialed).toEqual([endpoint(a.url), endpoint(b.url), endpoint(a.url), endpoint(b.url)]);
    await harness.waitForStatus(
      (s) => s.state === "connected" && connectedTo(harness!).length === 3,
      "connected a third time",
    );
    expect(connectedTo(harness)).toEqual([endpoint(a.url), endpoint(b.url), endpoint(b.url)]);
  });

  it("holds every URL to the same pin: a replica with another certificate gets nothing", async () => {
    const wrong = await replica({ tls: impostor });
    const right = await replica({ tls: certificate });
    const pin = formatFingerprint(new X509Certificate(certificate.certPem).fingerprint256);
    harness = start([wrong.url, right.url], { fingerprintSha256: pin });
    await right.waitForWelcomed(1);
    expect(wrong.dials).toBeGreaterThanOrEqual(1);
    expect(wrong.connections).toEqual([]);
    expect(wrong.messages).toEqual([]);
    const refused = await harness.log.waitFor(/refusing the controller/);
    expect(refused.message).toContain("nothing was sent");
    expect(harness.log.text()).not.toContain(TOKEN);
  });

  it("refuses an empty list before dialing", () => {
    expect(() => start([])).toThrow(/no controller URL/);
  });
});
