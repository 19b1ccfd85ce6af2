/**
 * `status` when no agent runs: the notebook server may still be up (the agent died, or was
 * stopped with SIGTERM), so look at it directly through the pidfile and the same checks.
 */
import { readFile } from "node:fs/promises";
import { type AgentState, foldHealth } from "@nbfleet/shared";
import { loadSettings } from "../config/load.js";
import { notebookUrl } from "../config/notebook-url.js";
import type { DataPaths } from "../config/paths.js";
import { runChecks } from "../health/run-checks.js";
import { readInstallRecord } from "../install/run.js";
import { readPidRecord } from "../supervisor/pidfile.js";
import { isRunning } from "../supervisor/proc.js";
import { reportCertificateFile } from "../tls/report.js";

export async function inspectOffline(paths: DataPaths): Promise<AgentState> {
  const settings = await loadSettings(paths);
  const install = await readInstallRecord(paths);
  const record = await readPidRecord(paths.pidFile);
  const alive = record ? await isRunning(record.pid, record.startTime) : false;
  const token = await readFile(paths.agentTokenFile, "utf8").then(
    (t) => t.trim(),
    () => "",
  );
  const certificate = await readFile(paths.certFile, "utf8").then(
    (pem) => reportCertificateFile(pem, paths),
    () => null,
  );
  const checks = await runChecks(
    {
      host: settings.ip === "0.0.0.0" ? "127.0.0.1" : settings.ip === "::" ? "::1" : settings.ip,
      port: settings.port,
      baseUrl: settings.baseUrl,
      token,
      pid: alive ? record!.pid : null,
      certFile: paths.certFile,
      diskPath: settings.notebookDir ?? paths.defaultNotebookDir,
      dataDir: paths.dataDir,
    },
    { deep: false },
  );
  const state = alive ? "running" : install ? "stopped" : "not_installed";
  const restarts = await readFile(paths.restartsFile, "utf8").then(
    (text) => Number((JSON.parse(text) as { restarts?: number }).restarts ?? 0),
    () => 0,
  );
  return {
    notebook: {
      state,
      pid: alive ? record!.pid : null,
      port: settings.port,
      url: notebookUrl(settings),
      restarts,
      startedAt: alive ? record!.startedAt : null,
      generation: install?.generation ?? null,
      version: install?.version ?? null,
      certificate,
      lastError: alive ? null : "no agent is running for this data directory",
    },
    health: foldHealth(checks, state),
  };
}
