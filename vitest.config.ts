import { defineConfig } from "vitest/config";

// Unit tests sit beside the code; slow end-to-end tests (real Jupyter, real processes) live in test/e2e.
export default defineConfig({
  test: {
    // One PostgreSQL server for the run: store tests run on SQLite and on PostgreSQL.
    globalSetup: ["packages/testkit/src/postgres-global-setup.ts"],
    projects: [
      {
        test: {
          name: "unit",
          include: ["{apps,packages}/*/src/**/*.test.ts", "packaging/src/**/*.test.ts"],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["{apps,packages}/*/test/e2e/**/*.test.ts"],
          testTimeout: 180_000,
          hookTimeout: 180_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
