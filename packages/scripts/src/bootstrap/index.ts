export {
  AZURE_CUSTOM_DATA_MAX_BYTES,
  CLOUD_BOOTSTRAP_PATH,
  CLOUD_DEFAULTS,
  type CloudInitOptions,
  customDataBase64,
  renderCloudInit,
} from "./cloud-init.js";
export {
  AGENT_ENVIRONMENT,
  AGENT_NODE_FLAGS,
  agentEnvironment,
  DEFAULT_NODE_DIST_URL,
  type LinuxGuestLayout,
  linuxAgentArgv,
  linuxGuestLayout,
  renderLinuxBootstrap,
} from "./linux.js";
export {
  type ControllerTrust,
  type GuestCertificate,
  type LinuxBootstrapOptions,
  LinuxBootstrapOptionsSchema,
  type WindowsBootstrapOptions,
  WindowsBootstrapOptionsSchema,
  trustSettings,
} from "./options.js";
export {
  WINDOWS_DEFAULTS,
  renderWindowsBootstrap,
  windowsAgentArgv,
  windowsCommandLineArg,
} from "./windows.js";
export {
  type PidFileRecord,
  readPidFile,
  type StopOptions,
  type StopOutcome,
  stopProcess,
  stopRecordedProcess,
  stopSandboxGuest,
} from "./sandbox-processes.js";
export { freeLoopbackPort } from "./sandbox-port.js";
