export * from "./health.js";
export * from "./protocol.js";
export * from "./validate.js";
export * from "./version.js";
export * from "./api.js";
export * from "./terminal.js";
export * from "./routes.js";
export * from "./controller-urls.js";
