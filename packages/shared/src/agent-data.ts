/**
 * Where everything lives inside an agent's data directory. One function, so no module
 * invents a path of its own: the agent, and whatever manages a guest from outside it (the
 * Azure emulator's sandbox guests stop a guest's notebook through its pid file).
 * Node-only: imported as `@nbfleet/shared/agent-data`, not through the package's index.
 *
 *   DIR/agent.json                 settings (schema-checked)
 *   DIR/state/install.json         detected Jupyter generation and version
 *   DIR/state/notebook.pid.json    pid + process start time + port, for re-adoption
 *   DIR/state/events.jsonl         the event log (capped)
 *   DIR/state/restarts.json        restart counter, survives agent restarts
 *   DIR/state/controller-credential  the agent's credential for its controller (0600)
 *   DIR/state/controller-ca.pem    the CA trusted for the controller's certificate, when one was given
 *   DIR/state/acme-account-key.pem the ACME account's private key (0600), made at the first issuance
 *   DIR/profile/nbserver/          JUPYTER_CONFIG_DIR: config, cert.pem, key.pem (0600), agent-token (0600)
 *   DIR/profile/runtime/           JUPYTER_RUNTIME_DIR
 *   DIR/profile/data/              JUPYTER_DATA_DIR
 *   DIR/notebooks/                 default notebook directory
 *   DIR/logs/notebook.log          the server's stdout+stderr, size-capped (notebook.log.1 the previous part)
 *   DIR/logs/agent.log             the agent's own log
 *   DIR/run/agent.sock             the local control socket of a running agent
 */
import path from "node:path";

export interface DataPaths {
  dataDir: string;
  settingsFile: string;
  stateDir: string;
  installRecord: string;
  pidFile: string;
  eventsFile: string;
  restartsFile: string;
  controllerCredential: string;
  controllerCa: string;
  /** The pinned controller certificate's key, learned at the first connection (link/pinned-key.ts). */
  controllerKey: string;
  /** The controller certificates a controller.trust put in place of the pin (link/trusted-controllers.ts). */
  controllerTrust: string;
  acmeAccountKey: string;
  profileDir: string;
  configDir: string;
  runtimeDir: string;
  jupyterDataDir: string;
  certFile: string;
  keyFile: string;
  agentTokenFile: string;
  defaultNotebookDir: string;
  logsDir: string;
  notebookLog: string;
  agentLog: string;
  runDir: string;
  controlSocket: string;
}

export const PROFILE_NAME = "nbserver";

export function dataPaths(dataDir: string): DataPaths {
  const dir = path.resolve(dataDir);
  const stateDir = path.join(dir, "state");
  const profileDir = path.join(dir, "profile");
  const configDir = path.join(profileDir, PROFILE_NAME);
  const logsDir = path.join(dir, "logs");
  const runDir = path.join(dir, "run");
  return {
    dataDir: dir,
    settingsFile: path.join(dir, "agent.json"),
    stateDir,
    installRecord: path.join(stateDir, "install.json"),
    pidFile: path.join(stateDir, "notebook.pid.json"),
    eventsFile: path.join(stateDir, "events.jsonl"),
    restartsFile: path.join(stateDir, "restarts.json"),
    controllerCredential: path.join(stateDir, "controller-credential"),
    controllerCa: path.join(stateDir, "controller-ca.pem"),
    controllerKey: path.join(stateDir, "controller-key.json"),
    controllerTrust: path.join(stateDir, "controller-trust.json"),
    acmeAccountKey: path.join(stateDir, "acme-account-key.pem"),
    profileDir,
    configDir,
    runtimeDir: path.join(profileDir, "runtime"),
    jupyterDataDir: path.join(profileDir, "data"),
    certFile: path.join(configDir, "cert.pem"),
    keyFile: path.join(configDir, "key.pem"),
    agentTokenFile: path.join(configDir, "agent-token"),
    defaultNotebookDir: path.join(dir, "notebooks"),
    logsDir,
    notebookLog: path.join(logsDir, "notebook.log"),
    agentLog: path.join(logsDir, "agent.log"),
    runDir,
    controlSocket: path.join(runDir, "agent.sock"),
  };
}
