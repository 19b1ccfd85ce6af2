/**
 * The store's two dialects, for tests that must hold on both: `describe.each(STORE_DIALECTS)`
 * around the tests, and `freshStoreLocation(dialect)` for where a new, empty store of that
 * dialect lives (its fields fit `openStore` options and controller settings alike).
 */
import { makeDataDir } from "./data-dir.js";
import { freshDatabaseUrl } from "./postgres-database.js";

export const STORE_DIALECTS = ["sqlite", "postgres"] as const;
export type StoreDialect = (typeof STORE_DIALECTS)[number];

export interface StoreLocation {
  /** Always a fresh directory: the SQLite file lives there, and the controller's other files. */
  dataDir: string;
  /**
   * PostgreSQL only: a fresh database on the suite's server, collated in en-US order as managed
   * PostgreSQL services create theirs (not byte order, as SQLite compares text).
   */
  databaseUrl?: string;
}

export async function freshStoreLocation(
  dialect: StoreDialect,
  prefix = "nbf-store-",
): Promise<StoreLocation> {
  const dataDir = makeDataDir(prefix);
  return dialect === "postgres"
    ? { dataDir, databaseUrl: await freshDatabaseUrl({ icuLocale: "en-US" }) }
    : { dataDir };
}
