/**
 * Vitest global setup: one PostgreSQL server for the whole run (tests that stop the server
 * start their own). Test files reach it through `freshDatabaseUrl()` (postgres-database.ts).
 */
import type { TestProject } from "vitest/node";
import { type PostgresServer, startPostgres } from "./postgres.js";

let server: PostgresServer | undefined;

export async function setup(project: TestProject): Promise<void> {
  server = await startPostgres();
  project.provide("postgresUrl", server.url);
}

export async function teardown(): Promise<void> {
  await server?.remove();
}

declare module "vitest" {
  export interface ProvidedContext {
    postgresUrl: string;
  }
}
