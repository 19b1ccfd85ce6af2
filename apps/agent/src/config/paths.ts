/** The agent's data-directory layout lives in `@nbfleet/shared` so tools outside the agent share it. */
export { type DataPaths, PROFILE_NAME, dataPaths } from "@nbfleet/shared/agent-data";
