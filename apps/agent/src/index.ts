/** What other packages (the controller's local provider, the benchmarks) use of the agent. */
export { Agent, type AgentOptions } from "./agent.js";
export { type DataPaths, dataPaths } from "./config/paths.js";
export { fetchEvents, fetchState, isAgentRunning, sendCommand } from "./control/client.js";
export type { AgentCore, CommandOutcome } from "./core.js";
export { apiUrl, probeApi, requestApi } from "./health/http.js";
export { KernelChannel } from "./health/kernel-channel.js";
export { resolveRunAs } from "./profile/user.js";
export { profileEnv } from "./profile/write.js";
export { AgentStreams, type AgentStreamsOptions } from "./streams/agent-streams.js";
export type { LinkStreams, StreamOut } from "./link/streams.js";
export type { TerminalTarget } from "./pty/shell.js";
export { ControllerLink, type LinkOptions, type LinkStatus, type LinkTiming } from "./link/link.js";
export type { LinkLog, LinkLogLevel } from "./link/log.js";
export type { CertificatePair } from "./tls/generate.js";
export { x509 } from "./tls/x509-library.js";
export { loadNodePty } from "./pty/node-pty.js";
export { capLogFile, openAppend } from "./supervisor/log-file.js";
