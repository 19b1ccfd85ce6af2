import { readFileSync } from "node:fs";
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { afterEach, describe, expect, it } from "vitest";
import { type Store, openStore } from "../store/store.js";
import { ensureAdminToken } from "./admin-token.js";
import { hashSecret } from "./secrets.js";

const stores: Store[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

async function fresh(dialect: (typeof STORE_DIALECTS)[number]) {
  const location = await freshStoreLocation(dialect);
  const store = await openStore({ ...location, flushMs: 20, flushMaxItems: 100 });
  stores.push(store);
  return { store, dataDir: location.dataDir };
}

const CONFIGURED = "nbf_configured_admin_token_0123456789";

describe.each(STORE_DIALECTS)("the first admin token on %s", (dialect) => {
  it("takes NBFLEET_ADMIN_TOKEN at the first start and keeps it (not generated: never printed)", async () => {
    const { store, dataDir } = await fresh(dialect);
    const first = await ensureAdminToken(store.tokens, dataDir, CONFIGURED);
    expect(first).toMatchObject({
      token: CONFIGURED,
      created: true,
      generated: false,
      configuredIgnored: false,
    });
    expect(readFileSync(first.file, "utf8").trim()).toBe(CONFIGURED);
    const again = await ensureAdminToken(store.tokens, dataDir, CONFIGURED);
    expect(again).toMatchObject({ token: CONFIGURED, created: false, configuredIgnored: false });
  });

  it("does not bring a revoked NBFLEET_ADMIN_TOKEN back at the next start", async () => {
    const { store, dataDir } = await fresh(dialect);
    const first = await ensureAdminToken(store.tokens, dataDir, CONFIGURED);
    const configured = await store.tokens.findByHash(hashSecret(CONFIGURED));
    // Another admin exists, and the configured token was revoked (its row deleted).
    await store.tokens.insert({
      id: "tok_other_admin",
      name: "other admin",
      role: "admin",
      hash: hashSecret("nbf_other_admin_token_0123456789"),
      createdAt: new Date().toISOString(),
    });
    expect(await store.tokens.delete(configured!.id)).toBeTruthy();

    const restarted = await ensureAdminToken(store.tokens, dataDir, CONFIGURED);
    expect(restarted).toMatchObject({ token: null, created: false, configuredIgnored: true });
    expect(await store.tokens.findByHash(hashSecret(CONFIGURED))).toBeUndefined();
    expect(restarted.file).toBe(first.file);
  });

  it("generates one when none is configured and none exists, and says it generated it", async () => {
    const { store, dataDir } = await fresh(dialect);
    const made = await ensureAdminToken(store.tokens, dataDir, null);
    expect(made).toMatchObject({ created: true, generated: true, configuredIgnored: false });
    expect(made.token).toMatch(/^nbf_/);
    expect(await ensureAdminToken(store.tokens, dataDir, null)).toMatchObject({
      token: made.token,
      created: false,
      generated: false,
    });
  });
});
