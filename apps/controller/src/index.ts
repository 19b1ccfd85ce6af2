/** What other packages (the benchmarks, outside tests) use of the controller. */
export { loadSettings, type ControllerSettings } from "./config/settings.js";
export { type NbfleetApp, buildServer, listen } from "./server.js";
export type { Provider, ProviderVm, ProvisionContext, ProvisionResult } from "./providers/types.js";
export { TerminalConnection, type TerminalOpenOptions } from "./cli/terminal-client.js";
