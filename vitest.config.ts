import { defineConfig } from "vitest/config";

// Unit tests sit beside the code; slow end-to-end tests (real Jupyter, real processes) live in test/e2e.
const ALONE = ["apps/controller/test/e2e/replicas.test.ts"];
// Each file removes the data directories it made (packages/testkit/src/data-dir.ts).
const setupFiles = ["packages/testkit/src/temp-dirs-setup.ts"];
export default defineConfig({
  test: {
    // Two files at a time, not vitest's default of one on this 2-core machine: most of the
    // suite waits on real processes and timers (Jupyter starting, certificates expiring), so a
    // single worker left the CPU a third idle and the run took 40 minutes. Both projects share
    // the limit (vitest runs projects with different limits one after the other), so an
    // end-to-end file may run beside another: each has its own ports, data dirs, sandbox users
    // and databases, and the run-wide servers above are shared by design.
    maxWorkers: 2,
    // One PostgreSQL server for the run: store tests run on SQLite and on PostgreSQL. One
    // Chromium for the run's browser tests and one pebble for its ACME tests, each started by
    // the first test that needs it.
    globalSetup: [
      "packages/testkit/src/postgres-global-setup.ts",
      "packages/testkit/src/browser-global-setup.ts",
      "packages/testkit/src/pebble-global-setup.ts",
      // The CLI bundled once (cli-bundle.ts): tests run `nbfleet` a hundred-odd times.
      "packages/testkit/src/cli-global-setup.ts",
    ],
    projects: [
      {
        test: {
          name: "unit",
          setupFiles,
          include: ["{apps,packages}/*/src/**/*.test.ts", "packaging/src/**/*.test.ts"],
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "e2e",
          setupFiles,
          include: ["{apps,packages}/*/test/e2e/**/*.test.ts"],
          exclude: [...ALONE, "**/node_modules/**"],
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
      {
        // Files that run with nothing beside them (a project of its own, so vitest runs it as a
        // group after the others): the replicas file runs three controllers, PostgreSQL and six
        // real notebooks on this 2-core machine, and its neighbours' timings and its own are
        // steadier apart.
        test: {
          name: "e2e-alone",
          setupFiles,
          include: ALONE,
          fileParallelism: false,
          testTimeout: 180_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
