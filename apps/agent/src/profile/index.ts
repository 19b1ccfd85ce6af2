/** The `nbserver` profile: config rendering, files on disk, and the user the server runs as. */
export { CONFIG_HEADER, type ConfigOptions, configFileName, renderConfig } from "./config.js";
export { type PyValue, pyBool, pyInt, pyList, pyStr, pyValue } from "./python-literal.js";
export {
  type ResolveRunAsOptions,
  type RunAsUser,
  assertTraversable,
  ensureTraversable,
  parsePasswdLine,
  resolveRunAs,
} from "./user.js";
export {
  type FileOwner,
  type ProfileOptions,
  type WrittenProfile,
  configFilePath,
  ensureAgentToken,
  profileEnv,
  writeProfile,
} from "./write.js";
