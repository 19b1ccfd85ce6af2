import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { RelayVerifier, relayAuthorization } from "./relay-auth.js";

const secret = randomBytes(32);
const claim = { method: "GET", url: "/internal/v1/vms/box/shell?cols=80", target: "rep_b", tokenId: "tok_1" };

describe("replica relay authorization", () => {
  it("accepts a request signed with the secret, once, for the replica it names", () => {
    const verifier = new RelayVerifier(secret, () => "rep_b");
    const header = relayAuthorization(secret, claim);
    expect(header).not.toContain(secret.toString("hex"));
    expect(header).not.toContain(secret.toString("base64url"));
    expect(verifier.verify("GET", claim.url, header)).toEqual({ ok: true, tokenId: "tok_1" });
    // The same request seen again (a replay) is refused.
    expect(verifier.verify("GET", claim.url, header)).toEqual({ ok: false, why: "invalid" });
  });

  it("refuses a missing header, a bearer token, a wrong secret, another URL, method, replica or token", () => {
    const verifier = new RelayVerifier(secret, () => "rep_b");
    expect(verifier.verify("GET", claim.url, undefined)).toEqual({ ok: false, why: "missing" });
    expect(verifier.verify("GET", claim.url, "Bearer nbf_admin")).toEqual({ ok: false, why: "missing" });
    const wrong = relayAuthorization(randomBytes(32), claim);
    expect(verifier.verify("GET", claim.url, wrong)).toEqual({ ok: false, why: "invalid" });
    const signed = relayAuthorization(secret, claim);
    expect(verifier.verify("GET", `${claim.url}&rows=1`, signed).ok).toBe(false);
    expect(verifier.verify("POST", claim.url, relayAuthorization(secret, claim)).ok).toBe(false);
    const forA = relayAuthorization(secret, { ...claim, target: "rep_a" });
    expect(verifier.verify("GET", claim.url, forA).ok).toBe(false);
    const otherToken = relayAuthorization(secret, claim).replace("token=tok_1", "token=tok_2");
    expect(verifier.verify("GET", claim.url, otherToken).ok).toBe(false);
    expect(verifier.verify("GET", claim.url, "NbfleetReplica garbage").ok).toBe(false);
  });

  it("refuses a request signed more than a minute away from now", () => {
    let now = Date.now();
    const verifier = new RelayVerifier(
      secret,
      () => "rep_b",
      () => now,
    );
    const old = relayAuthorization(secret, claim, now - 61_000);
    expect(verifier.verify("GET", claim.url, old).ok).toBe(false);
    const ahead = relayAuthorization(secret, claim, now + 61_000);
    expect(verifier.verify("GET", claim.url, ahead).ok).toBe(false);
    const fine = relayAuthorization(secret, claim, now - 30_000);
    now += 100_000;
    expect(verifier.verify("GET", claim.url, fine).ok).toBe(false);
  });
});
