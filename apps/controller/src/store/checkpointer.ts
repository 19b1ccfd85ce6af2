/**
 * WAL checkpoints off the main thread. better-sqlite3 is synchronous: a checkpoint run by a
 * commit (SQLite's auto-checkpoint) copies the WAL into the database file while every request
 * and agent message waits. Here a worker thread with its own connection runs PASSIVE
 * checkpoints, which never block the writer, and the main connection's auto-checkpoint is
 * raised to a safety net that only fires if the worker falls far behind or is gone.
 */
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type BetterSqlite3 from "better-sqlite3";

/** Pages (4 KiB) the WAL may reach before the main connection checkpoints by itself. */
const SAFETY_NET_PAGES = 16_384;
const WORKER_SOURCE = `
const { workerData, parentPort } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma("busy_timeout = 1000");
const run = () => { try { db.pragma("wal_checkpoint(PASSIVE)"); } catch {} };
const timer = setInterval(run, workerData.everyMs);
parentPort.on("message", () => { clearInterval(timer); run(); db.close(); process.exit(0); });
`;

export interface Checkpointer {
  close(): Promise<void>;
}

export function startCheckpointer(main: BetterSqlite3.Database, file: string, everyMs = 1000): Checkpointer {
  const driver = createRequire(import.meta.url).resolve("better-sqlite3");
  const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { driver, file, everyMs } });
  worker.unref();
  main.pragma(`wal_autocheckpoint = ${SAFETY_NET_PAGES}`);
  // A worker that cannot run leaves the main connection checkpointing as it did before.
  worker.on("error", () => main.pragma("wal_autocheckpoint = 1000"));
  let closed: Promise<void> | undefined;
  return {
    close() {
      closed ??= new Promise<void>((resolve) => {
        if (worker.threadId === -1) return resolve();
        worker.once("exit", () => resolve());
        // Held while it closes: an unreferenced worker would let the process end mid-close.
        worker.ref();
        worker.postMessage("close");
      });
      return closed;
    },
  };
}
