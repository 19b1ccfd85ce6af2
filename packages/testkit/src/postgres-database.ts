/**
 * A database of its own on the suite's shared PostgreSQL server (postgres-global-setup.ts),
 * so test files running side by side never see each other's rows.
 */
import { inject } from "vitest";
import { createDatabase } from "./postgres.js";
import "./postgres-global-setup.js";

export function freshDatabaseUrl(options: { icuLocale?: string } = {}): Promise<string> {
  return createDatabase(inject("postgresUrl"), undefined, options);
}
