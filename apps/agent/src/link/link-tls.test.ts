import { X509Certificate } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { publicKeySha256 } from "@nbfleet/shared/certificate-pin";
import { FakeController } from "@nbfleet/testkit/fake-controller";
import { FakeCore } from "@nbfleet/testkit/fake-core";
import { type LinkHarness, startLink } from "@nbfleet/testkit/link-harness";
import { type TestCa, makeTestCa, renewWithSameKey } from "@nbfleet/testkit/test-ca";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { formatFingerprint } from "../tls/fingerprint.js";
import { type CertificatePair, generateSelfSigned } from "../tls/generate.js";
import { PinnedKey } from "./pinned-key.js";

const TOKEN = "nbfb_secret-bootstrap-token-for-tls-tests";

let fake: FakeController | undefined;
let harness: LinkHarness | undefined;
let dir: string;
let selfSigned: CertificatePair;
let other: CertificatePair;
let ca: TestCa;

const fingerprint = (pair: CertificatePair) =>
  formatFingerprint(new X509Certificate(pair.certPem).fingerprint256);

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), "nbf-link-tls-"));
  [selfSigned, other, ca] = await Promise.all([generateSelfSigned(), generateSelfSigned(), makeTestCa()]);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function closeBoth(): Promise<void> {
  await harness?.stop();
  harness = undefined;
  await fake?.close();
  fake = undefined;
}

afterEach(closeBoth);

/** The link dialed, refused the certificate, and sent nothing. */
async function expectRefused(h: LinkHarness, f: FakeController, why: RegExp) {
  await f.waitFor(() => f.dials >= 1, "a dial");
  const line = await h.log.waitFor(/refusing the controller/);
  expect(line.level).toBe("error");
  expect(line.message).toMatch(why);
  expect(line.message).toContain("nothing was sent");
  expect(f.connections).toEqual([]);
  expect(f.messages).toEqual([]);
  expect(h.log.text()).not.toContain(TOKEN);
  expect(h.link.status.state).not.toBe("connected");
}

describe("ControllerLink over TLS", () => {
  it("connects to a self-signed controller whose certificate matches the pinned fingerprint", async () => {
    fake = await FakeController.start({ tls: selfSigned });
    expect(fake.url).toMatch(/^https:/);
    harness = startLink({
      url: fake.url,
      core: new FakeCore(),
      bootstrapToken: TOKEN,
      tls: { fingerprintSha256: fingerprint(selfSigned).toLowerCase() },
    });
    const welcomed = await fake.waitForWelcomed(1);
    expect(welcomed.bearer).toBe(TOKEN);
    expect(fake.messagesOf("hello")).toHaveLength(1);
  });

  it("never sends its hello or token to a controller whose certificate does not match the pin", async () => {
    fake = await FakeController.start({ tls: other });
    harness = startLink({
      url: fake.url,
      core: new FakeCore(),
      bootstrapToken: TOKEN,
      tls: { fingerprintSha256: fingerprint(selfSigned) },
    });
    await expectRefused(
      harness,
      fake,
      new RegExp(`SHA-256 ${fingerprint(other)}, but ${fingerprint(selfSigned)} is pinned`),
    );
    const wait = await harness.waitForStatus((s) => s.state === "waiting", "waiting");
    expect(wait).toMatchObject({ pace: "patient" });
  });

  it("trusts a controller certificate issued by the given CA file", async () => {
    const caFile = path.join(dir, "ca.pem");
    await writeFile(caFile, ca.caPem);
    fake = await FakeController.start({ tls: await ca.issueServer() });
    harness = startLink({ url: fake.url, core: new FakeCore(), bootstrapToken: TOKEN, tls: { caFile } });
    await fake.waitForWelcomed(1);
  });

  it("refuses a certificate the CA file did not issue", async () => {
    const caFile = path.join(dir, "ca-2.pem");
    await writeFile(caFile, ca.caPem);
    fake = await FakeController.start({ tls: selfSigned });
    harness = startLink({ url: fake.url, core: new FakeCore(), bootstrapToken: TOKEN, tls: { caFile } });
    await expectRefused(harness, fake, /not trusted by the given CA file/);
  });

  it("refuses a self-signed controller without a CA file or pin (the default trust store)", async () => {
    fake = await FakeController.start({ tls: selfSigned });
    harness = startLink({ url: fake.url, core: new FakeCore(), bootstrapToken: TOKEN });
    await expectRefused(harness, fake, /not trusted by the system trust store/);
  });

  it("checks both the CA and the pin when both are given", async () => {
    const caFile = path.join(dir, "ca-3.pem");
    await writeFile(caFile, ca.caPem);
    const issued = await ca.issueServer();
    fake = await FakeController.start({ tls: issued });
    harness = startLink({
      url: fake.url,
      core: new FakeCore(),
      bootstrapToken: TOKEN,
      tls: { caFile, fingerprintSha256: fingerprint(other) },
    });
    await expectRefused(harness, fake, /is pinned/);
  });

  it("refuses TLS pins for a plain ws:// controller", () => {
    expect(() =>
      startLink({
        url: "http://127.0.0.1:1",
        core: new FakeCore(),
        bootstrapToken: TOKEN,
        tls: { fingerprintSha256: fingerprint(selfSigned) },
      }),
    ).toThrow(/needs a TLS URL/);
  });
});

describe("a pinned controller certificate renewed with the same key", () => {
  const keyOf = (pair: CertificatePair) => publicKeySha256(new X509Certificate(pair.certPem));

  /** `pair`'s certificate made again by openssl from its key file (the README's renewal). */
  async function renewed(pair: CertificatePair, name: string): Promise<CertificatePair> {
    const keyFile = path.join(dir, `${name}-key.pem`);
    await writeFile(keyFile, pair.keyPem, { mode: 0o600 });
    const certPem = await readFile(renewWithSameKey(keyFile, dir, name), "utf8");
    return { certPem, keyPem: pair.keyPem };
  }

  /** What the agent's `up` does at each start: the record read again from the data directory. */
  async function pinnedKey(file: string, pinned: CertificatePair): Promise<PinnedKey> {
    const { pinnedKey, problem } = await PinnedKey.load(file, fingerprint(pinned), (error) => {
      throw error;
    });
    expect(problem).toBeNull();
    return pinnedKey;
  }

  async function connectOnce(tls: CertificatePair, pinned: CertificatePair, record: string) {
    fake = await FakeController.start({ tls });
    harness = startLink({
      url: fake.url,
      core: new FakeCore(),
      bootstrapToken: TOKEN,
      tls: { fingerprintSha256: fingerprint(pinned), pinnedKey: await pinnedKey(record, pinned) },
    });
    return { fake, harness };
  }

  it("learns the key from the pinned certificate and, after a restart, accepts the renewal", async () => {
    const record = path.join(dir, "learned-key.json");
    const first = await connectOnce(selfSigned, selfSigned, record);
    await first.fake.waitForWelcomed(1);
    await expect
      .poll(async () => JSON.parse(await readFile(record, "utf8").catch(() => "null")))
      .toEqual({ certificateSha256: fingerprint(selfSigned), keySha256: keyOf(selfSigned) });
    await closeBoth();

    const renewal = await renewed(selfSigned, "renewal-1");
    expect(fingerprint(renewal)).not.toBe(fingerprint(selfSigned));
    expect(keyOf(renewal)).toBe(keyOf(selfSigned));
    const second = await connectOnce(renewal, selfSigned, record);
    const welcomed = await second.fake.waitForWelcomed(1);
    expect(welcomed.bearer).toBe(TOKEN);
  });

  it("refuses the renewal before the pinned certificate was ever seen, and a new key always", async () => {
    const renewal = await renewed(selfSigned, "renewal-2");
    const unlearned = await connectOnce(renewal, selfSigned, path.join(dir, "never-learned.json"));
    await expectRefused(unlearned.harness, unlearned.fake, /its key is not known yet/);
    await closeBoth();

    const record = path.join(dir, "learned-then-other.json");
    await writeFile(
      record,
      JSON.stringify({ certificateSha256: fingerprint(selfSigned), keySha256: keyOf(selfSigned) }),
    );
    const newKey = await connectOnce(other, selfSigned, record);
    await expectRefused(
      newKey.harness,
      newKey.fake,
      new RegExp(`its key is not the pinned certificate's \\(SHA-256 ${keyOf(selfSigned)}\\)`),
    );
  });
});

describe("a pinned controller moved to a new key (controller.trust)", () => {
  const pinOf = (pair: CertificatePair) => ({
    certificateSha256: fingerprint(pair),
    keySha256: publicKeySha256(new X509Certificate(pair.certPem)),
  });

  /** What `up` loads at each start: the key record and the trusted set, from the data directory. */
  async function controllerPins(name: string): Promise<PinnedKey> {
    const { pinnedKey, problem } = await PinnedKey.load(
      path.join(dir, `${name}-key.json`),
      fingerprint(selfSigned),
      (error) => {
        throw error;
      },
      path.join(dir, `${name}-trust.json`),
    );
    expect(problem).toBeNull();
    return pinnedKey;
  }

  async function dial(tls: CertificatePair, pins: PinnedKey): Promise<void> {
    fake = await FakeController.start({ tls });
    harness = startLink({
      url: fake.url,
      core: new FakeCore(),
      bootstrapToken: TOKEN,
      tls: { fingerprintSha256: fingerprint(selfSigned), pinnedKey: pins },
    });
  }

  it("follows the controller onto a certificate with a new key, and refuses the old one once it is retired", async () => {
    await dial(selfSigned, await controllerPins("moved"));
    await fake!.waitForWelcomed(1);
    await closeBoth();

    // Step 1: while connected to the pinned certificate, the set {pinned, new} is stored.
    let pins = await controllerPins("moved");
    await dial(selfSigned, pins);
    await fake!.waitForWelcomed(1);
    await pins.trust([pinOf(selfSigned), pinOf(other)]);
    await closeBoth();

    // Step 2: the controller now serves the new key; an agent started again accepts it.
    pins = await controllerPins("moved");
    await dial(other, pins);
    expect((await fake!.waitForWelcomed(1)).bearer).toBe(TOKEN);
    // Step 3: the old certificate is retired while connected to the new one.
    await pins.trust([pinOf(other)]);
    await closeBoth();

    await dial(selfSigned, await controllerPins("moved"));
    await expectRefused(harness!, fake!, /replaced by controller\.trust with [0-9A-F:]+ \(or their keys\)/);
  });

  it("without a controller.trust, a certificate with a new key is refused as before", async () => {
    await dial(other, await controllerPins("never-moved"));
    await expectRefused(harness!, fake!, /its key is not known yet/);
  });
});
