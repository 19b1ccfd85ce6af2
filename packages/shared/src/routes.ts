/**
 * The controller's URL paths that programs other than its API clients call: agents dial the
 * gateway, and guest bootstraps download the agent from the artifact path.
 */
export const AGENT_CONNECT_PATH = "/v1/agent/connect";
export const AGENT_ARTIFACT_PATH = "/v1/agent/artifact";
