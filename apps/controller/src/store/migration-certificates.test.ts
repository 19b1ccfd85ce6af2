/** Migration 0009 on a store that had VMs and reported certificates before it (both dialects). */
import { STORE_DIALECTS, freshStoreLocation } from "@nbfleet/testkit/store-dialects";
import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { type Store, openStore } from "./store.js";
import { neverConnectedStatus } from "./vms-repo.js";

const stores: Store[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

describe.each(STORE_DIALECTS)("migration 0009 on %s", (dialect) => {
  it("fills cert_not_after from the notebooks reported before it; older VMs read as self-signed", async () => {
    const location = await freshStoreLocation(dialect);
    const open = async () => {
      const store = await openStore({ ...location, flushMs: 10_000, flushMaxItems: 1000 });
      stores.push(store);
      return store;
    };
    const before = await open();
    const now = new Date().toISOString();
    const notebooks: Record<string, unknown> = {
      reported: { state: "running", certificate: { notAfter: "2027-05-01T10:00:00+02:00" } },
      garbled: { state: "running", certificate: { notAfter: "later" } },
      none: { state: "running", certificate: null },
    };
    for (const [name, notebook] of Object.entries(notebooks)) {
      await before.vms.insert({ name, provider: "test", state: "running", labels: {}, passwordHash: null });
      before.writer.putStatus({ ...neverConnectedStatus(name, now), notebook: JSON.stringify(notebook) });
    }
    await before.writer.flush();
    await sql`update vm_status set notebook = 'not json' where vm_name = 'none'`.execute(before.db);
    // Back to the schema before 0009 (0012, 0011 and 0010 undone first), the rows as an older controller left them.
    await sql`alter table replicas drop column clock_offset_ms`.execute(before.db);
    await sql`delete from kysely_migration where name = '0012_replica_clock_offsets'`.execute(before.db);
    await sql`alter table replicas drop column key_sha256`.execute(before.db);
    await sql`delete from kysely_migration where name = '0011_replica_keys'`.execute(before.db);
    await sql`drop index vm_status_replica`.execute(before.db);
    await sql`delete from kysely_migration where name = '0010_vm_status_holders'`.execute(before.db);
    await sql`drop index vm_status_cert_not_after`.execute(before.db);
    await sql`alter table vm_status drop column cert_not_after`.execute(before.db);
    await sql`alter table vms drop column certificate`.execute(before.db);
    await sql`delete from kysely_migration where name = '0009_vm_certificates'`.execute(before.db);
    await stores.pop()!.close();

    const after = await open();
    const rows = await sql<{ vm_name: string; cert_not_after: string | null }>`
      select vm_name, cert_not_after from vm_status order by vm_name`.execute(after.db);
    expect(rows.rows).toEqual([
      { vm_name: "garbled", cert_not_after: null },
      { vm_name: "none", cert_not_after: null },
      { vm_name: "reported", cert_not_after: "2027-05-01T08:00:00.000Z" },
    ]);
    expect((await after.vms.require("reported")).certificate).toEqual({
      mode: "self-signed",
      hostname: null,
    });
    const expiring = await after.vms.list({ certNotAfterBefore: "2027-06-01T00:00:00.000Z", limit: 10 });
    expect(expiring.map((vm) => vm.name)).toEqual(["reported"]);
  });
});
