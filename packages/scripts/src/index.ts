/**
 * @nbfleet/scripts: what the controller hands to guests — the agent artifact it serves, and the
 * bootstraps that fetch it (Linux `sh` for sandboxes and cloud-init, PowerShell for Windows).
 */
export * from "./artifact/index.js";
export * from "./bootstrap/index.js";
export { ScriptsError, type ScriptsErrorCode, ScriptsErrorCodes } from "./errors.js";
