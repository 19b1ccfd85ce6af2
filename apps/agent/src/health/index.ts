/** The health checks of DESIGN.md, run against one notebook server. */
export type { CheckTarget } from "./target.js";
export {
  type ApiEndpoint,
  type ApiProbe,
  type ApiRequest,
  type ApiResponse,
  apiUrl,
  NETWORK_CHECK_TIMEOUT_MS,
  normalizeBaseUrl,
  probeApi,
  requestApi,
} from "./http.js";
export { checkProcess } from "./process-check.js";
export { checkHttps } from "./https-check.js";
export { checkAuth } from "./auth-check.js";
export { CERT_WARN_DAYS, checkTls } from "./tls-check.js";
export { KERNEL_CHECK_TIMEOUT_MS, PLOT_CELL, PRINT_CELL, checkKernel } from "./kernel-check.js";
export { KernelChannel, type RequestOutcome } from "./kernel-channel.js";
export {
  type DiskStats,
  LOAD_PER_CORE_WARN,
  type ResourceProbe,
  USAGE_FAIL_PERCENT,
  USAGE_WARN_PERCENT,
  checkResources,
  systemResources,
  usageStatus,
} from "./resources-check.js";
export { checkActivity } from "./activity-check.js";
export { type RunChecksOptions, runChecks } from "./run-checks.js";
